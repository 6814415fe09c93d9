"""The built-in publisher: synthetic price ticks at a fixed rate and payload size.

The schedule is absolute (tick *i* is due at ``start + i / rate``): when the loop falls behind it
publishes the overdue ticks at once instead of drifting, so a slow consumer can never slow the
source down. That is what keeps latency measurements free of coordinated omission.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from feed.broker import Broker

_MAX_BURST = 1_000


def make_payload(i: int, size: int) -> dict[str, Any]:
    """A tick whose compact JSON ``data`` is ``size`` bytes (or the minimum when smaller)."""
    price = round(100 + 10 * math.sin(i / 50), 4)
    base = {"i": i, "price": price, "pad": ""}
    overhead = len(b'{"i":%d,"price":%r,"pad":""}' % (i, price))
    base["pad"] = "x" * max(0, size - overhead)
    return base


async def run_ticker(
    broker: Broker,
    topic: str,
    rate: float,
    size: int,
    *,
    stop: asyncio.Event | None = None,
    count: int | None = None,
) -> int:
    """Publish until ``stop`` is set or ``count`` ticks are out; returns how many were published."""
    if rate <= 0:
        return 0
    period = 1.0 / rate
    start = time.perf_counter()
    i = 0
    while (stop is None or not stop.is_set()) and (count is None or i < count):
        due = int((time.perf_counter() - start) / period) + 1
        if count is not None:
            due = min(due, count)
        burst_end = min(due, i + _MAX_BURST)
        while i < burst_end:
            i += 1
            await broker.publish(topic, make_payload(i, size))
        delay = start + i * period - time.perf_counter()
        await asyncio.sleep(max(0.0, delay))
    return i
