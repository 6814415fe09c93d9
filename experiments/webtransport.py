"""WebTransport stream vs datagrams vs WebSocket: server CPU per 1,000 deliveries, latency, loss,
and server memory per session.

``python -m experiments.webtransport [--sessions 300] [--rate 20] [--duration 10]`` runs each cell
of :data:`CELLS` on a fresh ``pushlab serve`` process (``ServerProcess``, ``webtransport_port=0``:
a fresh process per cell, because memory freed by an earlier cell is reused without growing RSS):
it opens ``sessions`` clients of the cell's kind from this process (``clients/``), waits until
each has its cursor, reads the server's RSS (memory per session = growth / sessions), then lets
the server's ticker publish at ``rate`` for ``duration`` seconds and counts, over that window,
the server's CPU time, each delivery's latency (receive time - the server's publish stamp) and
the events each client missed (seq holes: only datagrams can lose any). Writes
``results/<UTC>_webtransport/`` (``summary.json`` cells are :class:`WebTransportCell`).

The clients share this process's one core, so latency includes their queueing; each cell
records that process's CPU (``generator_cpu_pct``; ``generator_bound`` at 90% of a core, where
latency and delivery counts are the client's limit). CPU per delivery on the server is the robust
comparison. The reference run is cited in docs/webtransport.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from clients.base import FeedClient, Received
from clients.websocket import WebSocketClient
from clients.webtransport import WebTransportClient
from experiments.children import rss_bytes
from experiments.cpuclock import process_cpu_s
from experiments.metrics import percentile
from experiments.records import WebTransportCell
from experiments.results import ResultsDir
from feed.settings import Settings
from servers.launch import ServerProcess

TOPIC = "ticks"
CPU_SCOPE = "server process (uvicorn + aioquic, one loop) over the window; clients elsewhere"
# The clients all run in this one process; at 90% of a core its queueing is in the latency and
# its backlog in the delivery count, so the cell says so (the lab's rule for every generator).
GENERATOR_BOUND = 0.9


@dataclass(frozen=True, slots=True)
class Cell:
    """One way of carrying the feed."""

    name: str
    make: Callable[[str], FeedClient]


CELLS = (
    Cell("wt-stream", lambda url: WebTransportClient(url, TOPIC)),
    Cell("wt-datagrams", lambda url: WebTransportClient(url, TOPIC, datagrams=True)),
    Cell("ws", lambda url: WebSocketClient(url, TOPIC)),
)


class Tally:
    """What one client received inside the measuring window."""

    __slots__ = ("first", "last", "n")

    def __init__(self) -> None:
        self.first = self.last = -1
        self.n = 0

    def lost(self) -> int:
        return 0 if self.n == 0 else (self.last - self.first + 1) - self.n


async def measure(
    cell: Cell,
    url: str,
    pid: int,
    sessions: int,
    load: tuple[float, int],
    duration_s: float,
    warmup_s: float,
) -> WebTransportCell:
    """One cell against a running server whose ticker publishes on :data:`TOPIC` at ``load``
    (events/s, payload bytes)."""
    rss_empty = rss_bytes(pid)
    clients = [cell.make(url) for _ in range(sessions)]
    tallies = [Tally() for _ in clients]
    latencies: list[float] = []
    window = [False]

    async def run(client: FeedClient, tally: Tally) -> None:
        async with contextlib.aclosing(client.events()) as items:
            async for item in items:
                if window[0] and isinstance(item, Received):
                    latencies.append(item.latency_ms)
                    seq = item.event.seq
                    tally.first = seq if tally.first < 0 else tally.first
                    tally.last, tally.n = seq, tally.n + 1

    tasks = [asyncio.ensure_future(run(c, t)) for c, t in zip(clients, tallies, strict=True)]
    try:
        deadline = time.monotonic() + 60 + sessions * 0.1
        while any(c.last_seq is None for c in clients):
            if time.monotonic() > deadline or any(t.done() for t in tasks):
                raise RuntimeError(f"{cell.name}: not every session opened")
            await asyncio.sleep(0.05)
        await asyncio.sleep(warmup_s)
        rss_open = rss_bytes(pid)
        dropped0 = await _dropped(url, cell)
        cpu0, own0 = process_cpu_s(pid), process_cpu_s(os.getpid())
        window[0] = True
        await asyncio.sleep(duration_s)
        window[0] = False
        cpu = process_cpu_s(pid) - cpu0
        own = process_cpu_s(os.getpid()) - own0
        dropped = await _dropped(url, cell) - dropped0
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    ordered = sorted(latencies)
    n = len(ordered)
    return {
        "kind": "webtransport",
        "cell": cell.name,
        "sessions": sessions,
        "rate": load[0],
        "size": load[1],
        "duration_s": duration_s,
        "deliveries": n,
        "lost": sum(t.lost() for t in tallies),
        "server_dropped": dropped,
        "reconnects": sum(c.counters.reconnects for c in clients),
        "server_cpu_s_per_1k_deliveries": 1000 * cpu / n if n else float("nan"),
        "server_rss_per_session_bytes": (rss_open - rss_empty) / sessions,
        "latency_ms_p50": percentile(ordered, 50),
        "latency_ms_p99": percentile(ordered, 99),
        "latency_ms_max": ordered[-1] if n else float("nan"),
        "cpu_scope": CPU_SCOPE,
        "generator_cpu_pct": 100 * own / duration_s,
        "generator_bound": own / duration_s >= GENERATOR_BOUND,
    }


async def _dropped(url: str, cell: Cell) -> int:
    """Datagrams the server did not send (too big, over budget); 0 for the other cells."""
    if cell.name != "wt-datagrams":
        return 0
    async with httpx.AsyncClient(trust_env=False) as http:
        counts = (await http.get(f"{url}/webtransport")).json()["datagrams"]
    return int(counts["dropped_too_big"]) + int(counts["dropped_over_budget"])


def run(
    cells: tuple[Cell, ...],
    sessions: int,
    rate: float,
    size: int,
    duration_s: float,
    warmup_s: float,
    root: Path,
) -> Path:
    """Every cell on its own fresh server process, into a new results folder."""
    out = ResultsDir.create("webtransport", root)
    params = {
        "cells": [c.name for c in cells],
        "sessions": sessions,
        "rate": rate,
        "size": size,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
    }
    settings = Settings.from_env(
        ticker_rate=rate,
        ticker_size=size,
        ticker_topic=TOPIC,
        log_level="warning",
        webtransport_port=0,
    )
    out.write_meta(params, settings=settings.as_dict(), started_at=time.time())
    for cell in cells:
        with ServerProcess(settings) as server:
            result = asyncio.run(
                measure(cell, server.url, server.pid, sessions, (rate, size), duration_s, warmup_s)
            )
        out.add_cell(result)
    out.write_meta(params, settings=settings.as_dict(), ended_at=time.time())
    return out.path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.webtransport")
    parser.add_argument("--cells", default=",".join(c.name for c in CELLS))
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="ticker events/s")
    parser.add_argument("--size", type=int, default=64, help="ticker payload bytes")
    parser.add_argument("--duration", type=float, default=10.0, help="measuring window, s")
    parser.add_argument("--warmup", type=float, default=2.0, help="s after all sessions opened")
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    by_name = {c.name: c for c in CELLS}
    cells = tuple(by_name[name] for name in args.cells.split(","))
    path = run(cells, args.sessions, args.rate, args.size, args.duration, args.warmup, args.results)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
