"""Where idle-connection memory goes: tracemalloc diff over N idle sockets to an in-process server.

    python -m experiments.idle_memory ws 1000      # or: sse 1000

Starts the app under uvicorn in a thread (ticker off), opens 50 warm-up sockets, snapshots,
opens N more (WebSocket upgrade or SSE GET, then silence), snapshots again and prints the
Python-tracked bytes per socket and the top allocation sites. Loopback only; sockets closed at exit.
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import socket
import threading
import time
import tracemalloc

from feed.fdlimit import raise_nofile
from feed.settings import Settings
from servers.app import create_app
from servers.runner import PushlabServer, build_config


def _request(transport: str) -> bytes:
    if transport == "ws":
        key = base64.b64encode(os.urandom(16)).decode()
        return (
            "GET /ws?topic=ticks HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    return b"GET /sse?topic=ticks HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"


def main() -> int:
    """Print per-socket Python memory and the top allocation sites."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("transport", choices=("ws", "sse"))
    parser.add_argument("n", type=int)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    raise_nofile()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings.from_env(port=port, log_level="warning", ticker_rate=0)
    app = create_app(settings)
    server = PushlabServer(build_config(settings, app, log_config=None), app)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    req, socks = _request(args.transport), []

    def open_(k: int) -> None:
        for _ in range(k):
            c = socket.create_connection(("127.0.0.1", port))
            c.sendall(req)
            c.recv(4096)
            socks.append(c)

    open_(50)
    time.sleep(1)
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    open_(args.n)
    time.sleep(2)
    gc.collect()
    diff = tracemalloc.take_snapshot().compare_to(before, "lineno")
    total = sum(d.size_diff for d in diff)
    print(f"{args.transport}: {total / args.n / 1024:.1f} KiB Python-tracked per idle socket")
    for d in diff[: args.top]:
        where = d.traceback[0]
        print(f"{d.size_diff / args.n:8.0f} B {d.count_diff / args.n:5.1f} obj  "
              f"{where.filename.split('site-packages/')[-1]}:{where.lineno}")  # fmt: skip
    for c in socks:
        c.close()
    server.should_exit = True
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
