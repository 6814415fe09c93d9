"""The live-controlled ticker: rate changes take effect at once, rate 0 pauses it."""

from __future__ import annotations

import asyncio
import contextlib

from feed.memory import MemoryBroker
from feed.ticker import TickerControl, run_controlled
from tests.support import async_wait_until


async def test_rate_and_size_change_while_running():
    """Pausing stops publishing; a new rate and size apply without a restart."""
    broker = MemoryBroker(1000, 10)
    await broker.start()
    control = TickerControl(rate=0.2, size=10)  # one tick per 5 s: a change must not wait for it
    stop = asyncio.Event()
    task = asyncio.ensure_future(run_controlled(broker, "t", control, stop))
    try:
        await async_wait_until(lambda: broker.stats()["published"] >= 1, 5, "first tick")
        control.update(rate=200, size=300)
        await async_wait_until(lambda: broker.stats()["published"] >= 20, 5, "fast ticks")
        last = (await broker.read("t", 0, 1000)).events[-1]
        assert len(last.json) > 300
        control.update(rate=0)
        await asyncio.sleep(0.05)  # let an in-flight tick land before the count is taken
        paused_at = broker.stats()["published"]
        await asyncio.sleep(0.1)
        assert broker.stats()["published"] == paused_at
    finally:
        stop.set()
        await asyncio.wait_for(task, 2)
        with contextlib.suppress(Exception):
            await broker.close()
