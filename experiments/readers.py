"""Feed readers for profiling a server: ``python -m experiments.readers ws|sse PORT N SECONDS``.

N WebSocket readers (``websockets`` client, no deflate, no pings) or N raw-socket SSE readers on
``127.0.0.1:PORT``, topic ``ticks``, for SECONDS; prints ``{"events": total}``. Deliberately
cheaper than the lab's clients so that a profiled server, not the readers, takes the CPU
(docs/performance.md, "Where the time goes").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import uvloop
from websockets.asyncio.client import connect

from feed.codec import dumps


async def _ws(port: int, stop: asyncio.Event) -> int:
    n = 0
    url = f"ws://127.0.0.1:{port}/ws?topic=ticks"
    async with connect(url, max_size=None, ping_interval=None, compression=None) as ws:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    await ws.recv()
                    n += 1
    return n


async def _sse(port: int, stop: asyncio.Event) -> int:
    n = 0
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /sse?topic=ticks HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):
                data = await reader.read(65536)
                if not data:
                    break
                n += data.count(b'data: {"topic')
    writer.close()
    return n


async def run(transport: str, port: int, n: int, seconds: float) -> int:
    """Total events the readers received."""
    stop = asyncio.Event()
    reader = _ws if transport == "ws" else _sse
    tasks = [asyncio.ensure_future(reader(port, stop)) for _ in range(n)]
    await asyncio.sleep(seconds)
    stop.set()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    return sum(x for x in done if isinstance(x, int))


def main() -> int:
    """Parse the arguments, read, print the total."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("transport", choices=("ws", "sse"))
    parser.add_argument("port", type=int)
    parser.add_argument("n", type=int)
    parser.add_argument("seconds", type=float)
    args = parser.parse_args()
    total = uvloop.run(run(args.transport, args.port, args.n, args.seconds))
    print(dumps({"events": total}).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
