"""The Redis broker against a real Redis: shared gapless seqs, replay-then-live, gaps, resets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from feed.broker import Subscription
from feed.exceptions import BadTopic, TopicLimit
from feed.redis_broker import RESET, BrokerUnavailable, RedisBroker
from tests.redis_support import SHARED_URL, OwnRedis
from tests.support import async_wait_until

pytestmark = pytest.mark.redis

Factory = Callable[..., RedisBroker]


@pytest.fixture
async def brokers(redis_prefix: str) -> AsyncIterator[Factory]:
    """Start brokers sharing one prefix (as separate instances would); all closed at teardown."""
    started: list[RedisBroker] = []

    async def make(history: int = 1000, url: str = SHARED_URL, **kwargs: int) -> RedisBroker:
        broker = RedisBroker(url, redis_prefix, history, **kwargs)
        await broker.start()
        started.append(broker)
        return broker

    yield make
    for b in started:
        await b.close()


async def take(sub: Subscription, n: int) -> list[int]:
    seqs: list[int] = []
    while len(seqs) < n:
        seqs += [e.seq for e in await asyncio.wait_for(sub.next_batch(), 10)]
    return seqs


async def test_seq_is_global_and_gapless_across_instances(brokers):
    """Concurrent publishes through two instances get seqs 1..N, each exactly once."""
    a, b = await brokers(), await brokers()
    events = await asyncio.gather(*(x.publish("t", i) for i in range(50) for x in (a, b)))
    assert sorted(e.seq for e in events) == list(range(1, 101))
    batch = await b.read("t", 0, 1000)
    assert [e.seq for e in batch.events] == list(range(1, 101))
    assert batch.events[41].json == next(e for e in events if e.seq == 42).json


async def test_subscribe_replays_then_goes_live_with_no_window(brokers):
    """A subscriber on another instance, joining mid-stream, gets since+1.. exactly once."""
    a, b = await brokers(), await brokers()
    for i in range(20):
        await a.publish("t", i)
    pump = asyncio.ensure_future(asyncio.gather(*(a.publish("t", i) for i in range(200))))
    async with b.subscribe("t", 5, 1000) as sub:
        assert sub.cursor == 5 and sub.gap is None
        await pump
        assert await take(sub, 215) == list(range(6, 221))


async def test_subscribe_from_now(brokers):
    """``since=None`` starts at the current last seq: only later events arrive."""
    a, b = await brokers(), await brokers()
    await a.publish("t", 0)
    async with b.subscribe("t", None, 100) as sub:
        assert sub.cursor == 1
        await a.publish("t", 1)
        assert await take(sub, 1) == [2]


async def test_expired_cursor_is_signalled(brokers):
    """History is bounded (MAXLEN ~); a cursor older than it gets an explicit gap."""
    a = await brokers(history=10)
    for i in range(400):
        await a.publish("t", i)
    batch = await a.read("t", 1, 5)
    assert batch.gap is not None and batch.gap.reason == "expired"
    oldest = batch.gap.oldest_seq
    assert oldest is not None and 1 < oldest <= 391
    assert [e.seq for e in batch.events] == list(range(oldest, oldest + 5))
    async with a.subscribe("t", 1, 1000) as sub:
        assert sub.gap is not None and sub.cursor == oldest - 1
    ahead = await a.read("t", 1000, 5)
    assert ahead.gap is not None and ahead.gap.reason == "ahead"


async def test_wait_wakes_on_publish_elsewhere(brokers):
    """A long-poll wait on one instance ends when another instance publishes."""
    a, b = await brokers(), await brokers()
    await a.publish("t", 0)
    assert await b.wait("t", 0, 1) is True
    assert await b.wait("t", 1, 0.05) is False
    waiter = asyncio.create_task(b.wait("t", 1, 10))
    await asyncio.sleep(0.05)
    await a.publish("t", 1)
    assert await asyncio.wait_for(waiter, 5) is True


async def test_bad_topic_is_refused(brokers):
    """Topic names are checked before anything reaches Redis."""
    a = await brokers()
    with pytest.raises(BadTopic):
        await a.publish("bad topic", 1)


async def test_redis_restart_is_never_silent(brokers, own_redis: OwnRedis):
    """Redis loses its data: streams close (reset), publishing fails meanwhile, old cursors gap."""
    a, b = await brokers(url=own_redis.url), await brokers(url=own_redis.url)
    for i in range(10):
        await a.publish("t", i)
    async with contextlib.AsyncExitStack() as stack:
        sub = await stack.enter_async_context(b.subscribe("t", 0, 100))
        assert await take(sub, 10) == list(range(1, 11))
        own_redis.stop()
        with pytest.raises(BrokerUnavailable):
            await a.publish("t", "lost")
        own_redis.start()
        await async_wait_until(lambda: sub.closed_reason == RESET, 10, "reset noticed")
    event = await a.publish("t", "new epoch")
    assert event.seq > 10, "a seq from before the reset was reused"
    batch = await b.read("t", 10, 10)
    assert batch.gap is not None and batch.gap.reason == "expired"
    assert [e.seq for e in batch.events] == [event.seq]
    assert a.stats()["resets"] + b.stats()["resets"] >= 1


async def test_overflow_and_kick_are_local(brokers):
    """A slow subscriber overflows alone; a kick closes this instance's streams only."""
    a, b = await brokers(), await brokers()
    async with (
        a.subscribe("t", None, 3) as slow,
        a.subscribe("t", None, 100) as fast,
        b.subscribe("t", None, 100) as other,
    ):
        for i in range(5):
            await a.publish("t", i)
        await async_wait_until(lambda: slow.closed_reason is not None, 10, "overflow")
        assert slow.closed_reason == "overflow"
        assert await take(fast, 5) == [1, 2, 3, 4, 5]
        assert await a.kick("t") == 2
        assert fast.closed_reason == "kicked" and other.closed_reason is None
        assert await take(other, 5) == [1, 2, 3, 4, 5]


async def test_topic_cap_and_release_match_the_memory_broker(brokers):
    """Held topics count against max_topics (TopicLimit past it); a released one is untracked."""
    b = await brokers(max_topics=1)
    async with b.subscribe("a", None, 10):
        with pytest.raises(TopicLimit):
            async with b.subscribe("b", None, 10):
                pass
    assert b.stats()["topics"] == 0
    async with b.subscribe("b", None, 10) as sub:
        await b.publish("b", 1)
        assert await take(sub, 1) == [1]


async def test_stream_length_follows_the_byte_cap(brokers):
    """Each XADD trims to as many events of its size as fit history_bytes."""
    blob = "x" * 10_000
    b = await brokers(history=1000, history_bytes=100_000)
    for _ in range(30):
        await b.publish("t", blob)
    retained = (await b.read("t", 0, 1000)).events
    # ~30 KB charged per event: three fit; MAXLEN ~ may keep a few more (one radix node).
    assert 3 <= len(retained) < 30
    assert retained[-1].seq == 30
