"""``pushlab rtt``: round-trip time of a WebSocket message vs an HTTP request.

Four modes against ``/echo`` of the lab's server in a child process (``python -m servers``,
what ``pushlab serve`` runs; ``servers.launch.ServerProcess``):

- ``ws``: one WebSocket connection; send a binary message, wait for the echo, repeat.
- ``http-keepalive``: ``POST /echo`` over one kept-alive HTTP/1.1 connection (httpx).
- ``http-new``: ``POST /echo`` on a new TCP connection each time (httpx with no keep-alive pool):
  what a request costs when it includes the connection set-up.
- ``http-raw``: ``POST /echo`` over one kept-alive connection with a minimal hand-written HTTP/1.1
  client on asyncio streams: the request/response cost without httpx's client-side overhead,
  so ``http-keepalive`` minus ``http-raw`` is what the client library adds.

Each cell (mode x payload size) does ``warmup`` unmeasured round trips, then ``n`` measured ones,
bounded by ``max_seconds``. A round trip is timed with ``perf_counter_ns`` from before the send to
after the whole echo has been read, and the echo is checked byte for byte. The clients are the
libraries pushlab's own clients use (websockets, httpx), so their overhead is part of the figure,
as it is for any Python client. Server CPU per round trip is the child's CPU clock
(``experiments.cpuclock``, ns).

Writes ``results/<stamp>_rtt/``: ``meta.json`` (parameters, settings, machine), ``summary.json``
(one cell per mode and size with ``rtt_us_p50/p90/p99``...), ``raw/<mode>-<size>.txt`` (every
sample, µs) and ``figures/rtt.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from experiments.cpuclock import process_cpu_s
from experiments.metrics import summarize
from experiments.records import RttCell, check
from experiments.results import ResultsDir
from feed.settings import WS_IMPLS, Settings
from feed.wire.http1 import END_OF_HEAD, parse_response_head, request_head
from servers.launch import ServerProcess

MODES = ("ws", "http-keepalive", "http-new", "http-raw")
RoundTrip = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class RttParams:
    """What one run measures; saved as ``meta.json`` params."""

    n: int = 2000
    warmup: int = 200
    sizes: tuple[int, ...] = (16, 1024, 16384, 65536)
    modes: tuple[str, ...] = MODES
    ws: str = Settings().ws_impl  # what `pushlab serve` uses
    max_seconds: float = 60.0
    profile: str = "default"
    extra: dict[str, Any] = field(default_factory=dict)


TINY = RttParams(n=100, warmup=10, sizes=(64, 4096), max_seconds=20.0, profile="tiny")


async def _measure(rt: RoundTrip, params: RttParams) -> tuple[list[float], bool]:
    """Warm up, then time up to ``n`` round trips in µs; True when cut short by the time limit."""
    for _ in range(params.warmup):
        await rt()
    samples: list[float] = []
    deadline = time.monotonic() + params.max_seconds
    for _ in range(params.n):
        t0 = time.perf_counter_ns()
        await rt()
        samples.append((time.perf_counter_ns() - t0) / 1000)
        if time.monotonic() > deadline:
            return samples, True
    return samples, False


def _check(sent: bytes, got: bytes | str) -> None:
    if got != sent:
        raise AssertionError(f"echo mismatch: sent {len(sent)} bytes, got {len(got)}")


async def _ws_cell(url: str, payload: bytes, params: RttParams) -> tuple[list[float], bool]:
    async with connect(f"{url}/echo", max_size=None, ping_interval=None, compression=None) as ws:

        async def rt() -> None:
            await ws.send(payload)
            _check(payload, await ws.recv())

        return await _measure(rt, params)


async def _http_cell(
    url: str, payload: bytes, params: RttParams, keepalive: bool
) -> tuple[list[float], bool]:
    limits = httpx.Limits(max_keepalive_connections=None if keepalive else 0)
    headers = {"content-type": "application/octet-stream"}
    async with httpx.AsyncClient(base_url=url, limits=limits, trust_env=False) as http:

        async def rt() -> None:
            r = await http.post("/echo", content=payload, headers=headers)
            r.raise_for_status()
            _check(payload, r.content)

        return await _measure(rt, params)


async def _raw_http_cell(url: str, payload: bytes, params: RttParams) -> tuple[list[float], bool]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    fields = {"Content-Type": "application/octet-stream", "Content-Length": str(len(payload))}
    head = request_head("POST", "/echo", f"{host}:{port}", fields)

    async def rt() -> None:
        writer.write(head + payload)
        answer = parse_response_head(await reader.readuntil(END_OF_HEAD))
        if answer.status != 200:
            raise AssertionError(f"unexpected answer {answer.status} {answer.reason}")
        _check(payload, await reader.readexactly(int(answer.headers["content-length"])))

    try:
        return await _measure(rt, params)
    finally:
        writer.close()
        await writer.wait_closed()


async def measure_cell(
    server: ServerProcess, mode: str, size: int, params: RttParams
) -> tuple[RttCell, list[float]]:
    """One cell: its summary and raw samples."""
    payload = os.urandom(size)
    pid = server.pid
    cpu0, own0, t0 = process_cpu_s(pid), time.process_time(), time.perf_counter()
    if mode == "ws":
        samples, truncated = await _ws_cell(server.ws_url, payload, params)
    elif mode == "http-raw":
        samples, truncated = await _raw_http_cell(server.url, payload, params)
    elif mode in ("http-keepalive", "http-new"):
        samples, truncated = await _http_cell(server.url, payload, params, mode == "http-keepalive")
    else:
        raise ValueError(f"unknown mode {mode!r}")
    total = params.warmup + len(samples)
    raw = {
        "mode": mode,
        "size": size,
        "ws_impl": params.ws,
        "truncated": truncated,
        "wall_s": round(time.perf_counter() - t0, 3),
        "server_cpu_us_per_rt": (process_cpu_s(pid) - cpu0) / total * 1e6,
        "client_cpu_us_per_rt": (time.process_time() - own0) / total * 1e6,
        **summarize(samples, "rtt_us_"),
    }
    return check(RttCell, raw, f"rtt cell {mode} {size}"), samples


async def run_rtt(params: RttParams, root: Path | str = "results") -> ResultsDir:
    """Start the server, measure every cell, write the results folder and the figure."""
    from experiments.rtt_plot import plot_rtt

    # The server's whole configuration, recorded as served: this process's PUSHLAB_* settings,
    # then what the run needs (echoes up to the largest size, deflate off like `pushlab serve`).
    settings = Settings.from_env(
        ticker_rate=0,
        log_level="warning",
        ws_impl=params.ws,
        ws_max_message_bytes=max(params.sizes),
        ws_compression=False,
    )
    rd = ResultsDir.create("rtt", root)
    meta_params = asdict(params)
    started = time.time()
    proc = ServerProcess(settings)
    server_opts = {
        "ws": settings.ws_impl,
        "ws_max_size": settings.ws_max_message_bytes,
        "deflate": settings.ws_compression,
    }
    rd.write_meta(meta_params, settings=settings.as_dict(), server=server_opts, started_at=started)
    with proc as server:
        for size in params.sizes:
            for mode in params.modes:
                cell, samples = await measure_cell(server, mode, size, params)
                raw = rd.raw(f"{mode}-{size}.txt")
                raw.write_text("".join(f"{s:.1f}\n" for s in samples))
                rd.add_cell(cell)
    rd.write_meta(
        meta_params,
        settings=settings.as_dict(),
        server=server_opts,
        started_at=started,
        ended_at=time.time(),
    )
    plot_rtt(rd.path)
    return rd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``pushlab rtt``."""
    d = RttParams()
    parser.add_argument("--tiny", action="store_true", help="the few-hundred-round-trip form")
    parser.add_argument("-n", type=int, default=d.n, help="measured round trips per cell")
    parser.add_argument("--warmup", type=int, default=d.warmup)
    parser.add_argument("--sizes", default=",".join(map(str, d.sizes)), help="payload bytes, csv")
    parser.add_argument("--modes", default=",".join(d.modes), help=f"subset of {','.join(MODES)}")
    parser.add_argument("--ws", choices=WS_IMPLS, default=d.ws, help="uvicorn --ws")
    parser.add_argument("--max-seconds", type=float, default=d.max_seconds, help="cap per cell")
    parser.add_argument("--out", default="results", help="results root")


def params_from_args(args: argparse.Namespace) -> RttParams:
    """``--tiny`` or the flags."""
    if args.tiny:
        return TINY
    modes = tuple(m for m in args.modes.split(",") if m)
    if unknown := set(modes) - set(MODES):
        raise SystemExit(f"unknown modes: {sorted(unknown)}")
    return RttParams(
        n=args.n,
        warmup=args.warmup,
        sizes=tuple(int(s) for s in args.sizes.split(",") if s),
        modes=modes,
        ws=args.ws,
        max_seconds=args.max_seconds,
    )


def run(args: argparse.Namespace) -> int:
    """Entry of ``pushlab rtt``: prints the folder and p50/p99 per cell."""
    rd = asyncio.run(run_rtt(params_from_args(args), args.out))
    print(rd.path)
    for c in rd.cells:
        print(
            f"{c['mode']:>15} {c['size']:>6} B  p50 {c['rtt_us_p50']:8.1f} µs  "
            f"p99 {c['rtt_us_p99']:8.1f} µs  server CPU {c['server_cpu_us_per_rt']:6.1f} µs/rt"
        )
    return 0
