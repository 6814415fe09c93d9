"""What permessage-deflate does to this feed's frames: bytes on the wire and server CPU.

``python -m experiments.compression`` (or ``make compression``) runs the lab's server with
permessage-deflate allowed (``PUSHLAB_WS_COMPRESSION=1``; off by default), and for each
payload kind x size x deflate on/off: opens a raw WebSocket (offering ``permessage-deflate`` or
not), publishes ``--events`` events over HTTP and counts the bytes of the event frames that arrive,
with the server's CPU time over the same span. Writes ``results/<UTC>_compression/``.

Payload kinds: ``tick`` is the lab ticker's event (padded with ``x``: compresses absurdly well,
shown as the optimistic bound); ``quotes`` is a list of random price quotes (repeating keys,
random digits: typical JSON).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from clients.explain.handshake import open_ws, ws_target
from clients.explain.ws_frames import Inflater
from experiments.cpuclock import process_cpu_s
from experiments.records import CompressionCell
from experiments.results import ResultsDir
from feed.settings import Settings
from feed.ticker import make_payload
from feed.wire.ws import TEXT, FrameReader
from servers.launch import ServerProcess

SIZES = (64, 512, 4096)
KINDS = ("tick", "quotes")


def payload(kind: str, i: int, size: int, rng: random.Random) -> Any:
    """An event body of about ``size`` bytes of compact JSON."""
    if kind == "tick":
        return make_payload(i, size)
    quotes: list[dict[str, Any]] = []
    while len(str(quotes)) < size:
        sym = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4))
        bid = round(rng.uniform(10, 500), 4)
        quotes.append({"sym": sym, "bid": bid, "ask": round(bid + rng.uniform(0, 0.1), 4)})
    return {"i": i, "quotes": quotes}


def measure(
    url: str, pid: int, kind: str, size: int, deflate: bool, events: int
) -> CompressionCell:
    """One cell: publish ``events`` events and count the event frames' bytes as received."""
    topic = f"cmp-{kind}-{size}-{int(deflate)}"
    extra = {"Sec-WebSocket-Extensions": "permessage-deflate"} if deflate else None
    wire, hs = open_ws(url, ws_target(topic), extra=extra, timeout=30)
    reader, inflate, rng = FrameReader(), Inflater(), random.Random(size)
    with wire, httpx.Client(trust_env=False) as http:
        for ready in wire.read_frames(reader, 1, 10):  # inflated too: one zlib stream throughout
            if ready.rsv1:
                inflate(ready)
        cpu0 = process_cpu_s(pid)
        for i in range(events):
            body = payload(kind, i, size, rng)
            assert http.post(f"{url}/publish", params={"topic": topic}, json=body).is_success
        frames = [f for f in wire.read_frames(reader, events, 30) if f.opcode == TEXT]
        cpu = process_cpu_s(pid) - cpu0
    app = [len(inflate(f)) if f.rsv1 else len(f.payload) for f in frames]
    on_wire = [len(f.raw) for f in frames]
    n = len(frames)
    return {
        "kind": "compression",
        "payload": kind,
        "size": size,
        "deflate": deflate,
        "extensions": hs["extensions"],
        "events": n,
        "app_bytes_per_event": sum(app) / n,
        "wire_bytes_per_event": sum(on_wire) / n,
        "wire_vs_app": sum(on_wire) / sum(app),
        "server_cpu_s_per_1k_events": 1000 * cpu / n,
        "cpu_scope": "server process during publish (HTTP) + fan-out; compare on vs off",
    }


def run(events: int, sizes: tuple[int, ...], kinds: tuple[str, ...], root: Path) -> Path:
    """All cells into a new results folder; returns its path."""
    out = ResultsDir.create("compression", root)
    params = {"events": events, "sizes": list(sizes), "kinds": list(kinds), "server_deflate": True}
    # The lab's server as `pushlab serve` runs it, with permessage-deflate allowed.
    settings = Settings.from_env(ticker_rate=0, log_level="warning", ws_compression=True)
    out.write_meta(params, settings=settings.as_dict(), started_at=time.time())
    with ServerProcess(settings) as server:
        for kind in kinds:
            for size in sizes:
                for deflate in (False, True):
                    out.add_cell(measure(server.url, server.pid, kind, size, deflate, events))
    out.write_meta(params, settings=settings.as_dict(), ended_at=time.time())
    return out.path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.compression")
    parser.add_argument("--events", type=int, default=500, help="events per cell")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    path = run(args.events, sizes, tuple(args.kinds.split(",")), args.results)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
