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
import gc
import socket
import sysconfig
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from clients.explain.handshake import ws_target
from feed.fdlimit import raise_nofile
from feed.settings import Settings
from feed.wire import ws
from feed.wire.http1 import sse_request
from servers.launch import ServerThread


def upgrade_request(transport: str, topic: str = "ticks") -> bytes:
    """The bytes that open one idle feed socket: a WebSocket upgrade or an SSE GET."""
    if transport == "ws":
        return ws.upgrade_request("x", ws_target(topic), ws.new_ws_key())
    return sse_request("x", {"topic": topic})


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


def idle_growth(
    port: int,
    request: bytes,
    expect: bytes,
    n: int,
    settle: Callable[[int], None],
    warmup: int = 20,
) -> list[tracemalloc.StatisticDiff]:
    """What ``n`` idle sockets leave behind, after ``warmup`` sockets; ``settle(k)`` returns once
    the server holds ``k`` of them. Every socket is closed before returning."""
    socks: list[socket.socket] = []

    def open_(k: int) -> None:
        socks.extend(open_idle(port, request, k, expect))
        settle(len(socks))

    try:
        open_(warmup)
        return tracked_growth(lambda: open_(n))
    finally:
        for c in socks:
            c.close()


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
    settings = Settings.from_env(log_level="warning", ticker_rate=0)
    req, ok = upgrade_request(args.transport), b" 101 " if args.transport == "ws" else b" 200 "
    with ServerThread(settings) as server:
        # No registry to ask from out here: give the server time to settle each batch.
        diff = idle_growth(
            server.port, req, ok, args.n, lambda k: time.sleep(1 + k / 1000), warmup=50
        )
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
