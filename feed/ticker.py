"""The built-in publisher: synthetic price ticks at a fixed rate and payload size.

The schedule is absolute (tick *i* is due at ``start + i / rate``): when the loop falls behind it
publishes the overdue ticks at once instead of drifting, so a slow consumer can never slow the
source down. That is what keeps latency measurements free of coordinated omission.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

from feed.broker import Broker

_MAX_BURST = 1_000
_WAKE_S = 0.05


def make_payload(i: int, size: int) -> dict[str, Any]:
    """A tick whose compact JSON ``data`` is ``size`` bytes (or the minimum when smaller)."""
    price = round(100 + 10 * math.sin(i / 50), 4)
    base = {"i": i, "price": price, "pad": ""}
    overhead = len(b'{"i":%d,"price":%r,"pad":""}' % (i, price))
    base["pad"] = "x" * max(0, size - overhead)
    return base


@dataclass
class TickerControl:
    """The running ticker's rate and payload size, changeable live (``POST /admin/ticker``).

    Settings stay frozen: this is runtime state owned by the app, seeded from them. A change
    restarts the schedule from now, so lowering the rate never leaves a backlog to catch up.
    """

    rate: float
    size: int
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    ticking: bool = False  # set by run_controlled: False while paused (rate 0) or stopped

    def update(self, rate: float | None = None, size: int | None = None) -> None:
        """Apply a change and wake the ticker."""
        if rate is not None:
            if rate < 0:
                raise ValueError("rate must be >= 0")
            self.rate = rate
        if size is not None:
            if size < 0:
                raise ValueError("size must be >= 0")
            self.size = size
        self.changed.set()


async def run_controlled(
    broker: Broker, topic: str, control: TickerControl, stop: asyncio.Event
) -> int:
    """Tick at ``control``'s current rate and size until ``stop``; rate 0 pauses."""
    total = 0
    while not stop.is_set():
        control.changed.clear()
        control.ticking = control.rate > 0
        if not control.ticking:
            await _first(control.changed.wait(), stop.wait())
            continue
        changed = asyncio.Event()
        watcher = asyncio.ensure_future(_relay(control.changed, changed, stop))
        try:
            total += await run_ticker(broker, topic, control.rate, control.size, stop=changed)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    control.ticking = False
    return total


async def _relay(src: asyncio.Event, dst: asyncio.Event, stop: asyncio.Event) -> None:
    """Set ``dst`` when ``src`` or ``stop`` fires."""
    await _first(src.wait(), stop.wait())
    dst.set()


async def _first(*aws: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


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
        if burst_end - i == 1:
            i += 1
            await broker.publish(topic, make_payload(i, size))
        elif burst_end > i:
            # Behind schedule (the loop was busy): the late ticks go out as one run, so each
            # subscriber gets them in one write (feed.broker.Subscription.feed_run).
            await broker.publish_many(
                topic, [make_payload(j, size) for j in range(i + 1, burst_end + 1)]
            )
            i = burst_end
        delay = start + i * period - time.perf_counter()
        if stop is not None and delay > _WAKE_S:
            # A long gap between ticks (low rates) must not delay a stop or a live rate change.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
        else:
            await asyncio.sleep(max(0.0, delay))
    return i
