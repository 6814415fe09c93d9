"""``pushlab listen``: subscribe over one transport and print events as they arrive.

Like ``wscat`` or ``curl -N``, but the same for every transport, with reconnects, resume and a
running p50/p95 of end-to-end latency on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
from collections import deque
from typing import Any

from clients import CLIENTS
from clients.base import FeedClient, Received


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``pushlab listen``."""
    parser.add_argument("--transport", "-t", choices=sorted(CLIENTS), default="sse")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--topic", default="ticks")
    parser.add_argument("--since", type=int, help="resume after this seq (0: all retained)")
    parser.add_argument("--count", type=int, help="stop after this many events")
    parser.add_argument("--interval", type=float, default=1.0, help="short-poll interval, s")
    parser.add_argument("--quiet", "-q", action="store_true", help="only the stats line")
    parser.add_argument("--token", help="JWT (see POST /token); sent the transport's way")
    parser.add_argument("--binary", action="store_true", help="ws: MessagePack event frames")
    parser.add_argument("--datagrams", action="store_true", help="wt: events as datagrams")


def make_client(args: argparse.Namespace) -> FeedClient:
    """The client for ``args.transport``."""
    cls = CLIENTS[args.transport]
    extra: dict[str, Any] = {"interval_s": args.interval} if args.transport == "poll" else {}
    if args.binary and args.transport == "ws":
        extra["binary"] = True
    if getattr(args, "datagrams", False) and args.transport == "wt":
        extra["datagrams"] = True
    return cls(args.url, args.topic, since=args.since, token=getattr(args, "token", None), **extra)


async def listen(args: argparse.Namespace) -> int:
    """Print until ``--count`` events or Ctrl-C."""
    client = make_client(args)
    window: deque[float] = deque(maxlen=1000)
    n = 0
    async with contextlib.aclosing(client.events()) as items:
        async for item in items:
            if not isinstance(item, Received):
                print(f"# gap: {item.as_dict()}", file=sys.stderr, flush=True)
                continue
            n += 1
            window.append(item.latency_ms)
            if not args.quiet:
                print(item.event.seq, item.event.data, flush=True)
            if n % 50 == 0 or n == args.count:
                _stats(client, window)
            if args.count is not None and n >= args.count:
                break
    return 0


def _stats(client: FeedClient, window: deque[float]) -> None:
    q = statistics.quantiles(window, n=100) if len(window) > 1 else [window[0]] * 99
    c = client.counters
    print(
        f"# {client.transport} events={c.events} p50={q[49]:.2f}ms p95={q[94]:.2f}ms "
        f"reconnects={c.reconnects} gaps={c.gaps} dups={c.duplicates}",
        file=sys.stderr,
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    """Entry of ``pushlab listen``."""
    return asyncio.run(listen(args))
