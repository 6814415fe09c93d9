"""The ticker: exact payload sizes, an absolute schedule, live rate and size changes."""

import asyncio
import contextlib
import time

import orjson
import pytest

from feed.memory import MemoryBroker
from feed.ticker import TickerControl, make_payload, run_controlled, run_ticker
from tests.support import async_wait_until


@pytest.mark.parametrize("size", [64, 256, 1024, 4096])
def test_payload_size_is_exact(size):
    """The data JSON is exactly the requested size."""
    for i in (1, 77, 123456):
        assert len(orjson.dumps(make_payload(i, size))) == size


async def test_count_and_rate():
    """count ticks at rate R take about count/R seconds and land as seq 1..count."""
    b = MemoryBroker(1000)
    t0 = time.perf_counter()
    n = await run_ticker(b, "t", 200.0, 64, count=40)
    elapsed = time.perf_counter() - t0
    batch = await b.read("t", 0, 1000)
    assert n == 40 and [e.seq for e in batch.events] == list(range(1, 41))
    assert elapsed >= 39 / 200


async def test_catches_up_instead_of_drifting():
    """After a stall the ticker publishes the overdue ticks at once (no coordinated omission)."""
    b = MemoryBroker(1000)
    stop = asyncio.Event()
    task = asyncio.ensure_future(run_ticker(b, "t", 100.0, 64, stop=stop))
    await asyncio.sleep(0.05)
    time.sleep(0.3)  # block the loop: ~30 ticks fall due meanwhile
    await asyncio.sleep(0.02)
    published = b.stats()["published"]
    stop.set()
    await task
    assert published >= 30


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
        await async_wait_until(lambda: not control.ticking, 5, "the ticker to pause")
        paused_at = broker.stats()["published"]
        await asyncio.sleep(0.1)  # a bounded window in which 200/s would publish ~20
        assert broker.stats()["published"] == paused_at
    finally:
        stop.set()
        await asyncio.wait_for(task, 2)
        with contextlib.suppress(Exception):
            await broker.close()


async def test_overdue_ticks_go_out_as_one_run():
    """Behind schedule, the ticker hands each subscriber the overdue ticks as one run."""
    b = MemoryBroker(1000)
    runs: list[int] = []
    stop = asyncio.Event()
    async with b.subscribe("t", None, 1000) as sub:
        sub.attach(lambda e: True, lambda events: runs.append(len(events)) is None)
        writer = asyncio.ensure_future(sub.next_batch())
        await async_wait_until(lambda: sub._direct, 5, "writer parked")
        task = asyncio.ensure_future(run_ticker(b, "t", 100.0, 64, stop=stop))
        await async_wait_until(lambda: b.stats()["published"] >= 1, 5, "first tick")
        time.sleep(0.3)  # block the loop: ~30 ticks fall due meanwhile
        await async_wait_until(lambda: runs, 5, "a run")
        stop.set()
        await task
        writer.cancel()
    assert max(runs) >= 20
