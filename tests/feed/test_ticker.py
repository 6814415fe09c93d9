"""The ticker: exact payload sizes and an absolute schedule."""

import asyncio
import time

import orjson
import pytest

from feed.memory import MemoryBroker
from feed.ticker import make_payload, run_ticker


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
