"""Where idle-connection memory goes: tracemalloc diff over N idle sockets to an in-process server.

    python -m experiments.idle_memory ws 1000      # or: sse 1000
    python -m experiments.idle_memory sse 1000 --by package    # per library, not per line

Starts the app under uvicorn in a thread (ticker off), opens 50 warm-up sockets, snapshots,
opens N more (WebSocket upgrade or SSE GET, then silence), snapshots again and prints the
Python-tracked bytes per socket and the top allocation sites (``--by package``: summed per
installed package, stdlib module or project folder). Server settings come from ``PUSHLAB_*``
(e.g. ``PUSHLAB_SSE_IMPL=pushlab``). Loopback only; sockets closed at exit.
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import socket
import sysconfig
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from feed.fdlimit import raise_nofile
from feed.settings import Settings
from servers.app import create_app
from servers.runner import PushlabServer, build_config


def upgrade_request(transport: str, topic: str = "ticks") -> bytes:
    """The bytes that open one idle feed socket: a WebSocket upgrade or an SSE GET."""
    if transport == "ws":
        key = base64.b64encode(os.urandom(16)).decode()
        return (
            f"GET /ws?topic={topic} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    return (
        f"GET /sse?topic={topic} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode()
    )


def open_idle(port: int, request: bytes, n: int, expect: bytes = b" 101 ") -> list[socket.socket]:
    """``n`` sockets to 127.0.0.1:``port``, each sent ``request``; its first answer must hold
    ``expect`` (the upgrade, or ``b" 200 "`` for SSE)."""
    socks = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port))
        socks.append(c)
        c.settimeout(10)
        c.sendall(request)
        answer = c.recv(4096)
        if expect not in answer:
            for s in socks:
                s.close()
            raise RuntimeError(f"expected {expect!r} in the answer, got {answer[:80]!r}")
    return socks


def tracked_growth(action: Callable[[], object]) -> list[tracemalloc.StatisticDiff]:
    """Python-tracked allocations that ``action`` leaves behind (after a GC), largest first."""
    gc.collect()
    tracemalloc.start(1)
    try:
        before = tracemalloc.take_snapshot()
        action()
        gc.collect()
        return tracemalloc.take_snapshot().compare_to(before, "lineno")
    finally:
        tracemalloc.stop()


PROJECT = Path(__file__).resolve().parent.parent
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def package_of(filename: str) -> str:
    """Who allocated: ``anyio``, ``stdlib asyncio``, ``pushlab servers``, or the file itself."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    path = Path(filename)
    for root, prefix in ((PROJECT, "pushlab"), (STDLIB, "stdlib")):
        if path.is_relative_to(root):
            return f"{prefix} {path.relative_to(root).parts[0].removesuffix('.py')}"
    return filename


def by_package(diff: Iterable[tracemalloc.StatisticDiff]) -> list[tuple[str, int, int]]:
    """(package, bytes, objects) grown, largest first."""
    size: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for d in diff:
        key = package_of(d.traceback[0].filename)
        size[key] += d.size_diff
        count[key] += d.count_diff
    return [(k, v, count[k]) for k, v in size.most_common()]


def main() -> int:
    """Print per-socket Python memory and the top allocation sites."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("transport", choices=("ws", "sse"))
    parser.add_argument("n", type=int)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--by", choices=("site", "package"), default="site")
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
    req, ok = upgrade_request(args.transport), b" 101 " if args.transport == "ws" else b" 200 "
    socks = open_idle(port, req, 50, ok)
    time.sleep(1)

    def open_n() -> None:
        socks.extend(open_idle(port, req, args.n, ok))
        time.sleep(2)

    diff = tracked_growth(open_n)
    total = sum(d.size_diff for d in diff)
    print(f"{args.transport}: {total / args.n / 1024:.1f} KiB Python-tracked per idle socket")
    print(f"settings: sse_impl={settings.sse_impl} ws_impl={settings.ws_impl}")
    if args.by == "package":
        for name, size, count in by_package(diff)[: args.top]:
            print(f"{size / args.n:8.0f} B {count / args.n:5.1f} obj  {name}")
    else:
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
