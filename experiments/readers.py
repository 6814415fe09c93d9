"""Feed readers for profiling a server: ``python -m experiments.readers ws|sse PORT N SECONDS``.

N WebSocket readers (``websockets`` client, no deflate, no pings) or N raw-socket SSE readers on
``127.0.0.1:PORT``, topic ``ticks``, for SECONDS; prints ``{"events": total, "latency_ms_p50":
..., "latency_ms_p99": ...}``. Deliberately cheaper than the lab's clients so that a profiled
server, not the readers, takes the CPU (docs/performance.md, "Where the time goes"); for the same
reason their latency (receive time minus the event's ``ts_ns``, after the first second) is mostly
the server's, where the lab's httpx-based SSE client adds its own queueing under load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time

import uvloop
from websockets.asyncio.client import connect

from feed.codec import dumps
from feed.wire.http1 import sse_request

TS_NS = re.compile(rb'"ts_ns":(\d+)')
WARMUP_S = 1.0


class Latencies:
    """Receive time minus ``ts_ns`` of every event after the warm-up, in ms."""

    def __init__(self) -> None:
        self.after_ns = time.time_ns() + int(WARMUP_S * 1e9)
        self.ms: list[float] = []

    def add(self, data: bytes) -> None:
        now = time.time_ns()
        if now >= self.after_ns:
            self.ms.extend((now - int(m.group(1))) / 1e6 for m in TS_NS.finditer(data))

    def percentile(self, q: float) -> float | None:
        if not self.ms:
            return None
        ordered = sorted(self.ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _ws(port: int, stop: asyncio.Event, lat: Latencies) -> int:
    n = 0
    url = f"ws://127.0.0.1:{port}/ws?topic=ticks"
    async with connect(url, max_size=None, ping_interval=None, compression=None) as ws:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    message = await ws.recv(decode=False)
                    n += 1
                    lat.add(message)
    return n


async def _sse(port: int, stop: asyncio.Event, lat: Latencies) -> int:
    n = 0
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sse_request("x", {"topic": "ticks"}))
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):
                data = await reader.read(65536)
                if not data:
                    break
                n += data.count(b'data: {"topic')
                lat.add(data)
    writer.close()
    return n


async def run(transport: str, port: int, n: int, seconds: float) -> dict[str, float | None]:
    """Total events the readers received, and their latency percentiles."""
    stop = asyncio.Event()
    lat = Latencies()
    reader = _ws if transport == "ws" else _sse
    tasks = [asyncio.ensure_future(reader(port, stop, lat)) for _ in range(n)]
    await asyncio.sleep(seconds)
    stop.set()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "events": sum(x for x in done if isinstance(x, int)),
        "latency_ms_p50": lat.percentile(0.5),
        "latency_ms_p99": lat.percentile(0.99),
    }


def main() -> int:
    """Parse the arguments, read, print the totals."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("transport", choices=("ws", "sse"))
    parser.add_argument("port", type=int)
    parser.add_argument("n", type=int)
    parser.add_argument("seconds", type=float)
    args = parser.parse_args()
    print(dumps(uvloop.run(run(args.transport, args.port, args.n, args.seconds))).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
