"""The memory broker and subscriptions: replay then live, bounded buffers, kicks."""

import asyncio

import pytest

from feed.broker import KICKED, OVERFLOW
from feed.exceptions import BadTopic, CapacityError, SubscriptionClosed
from feed.memory import MemoryBroker


async def test_replay_then_live_without_window():
    """A subscriber from since=2 gets 3..5 replayed then live events, none twice."""
    b = MemoryBroker(100)
    for i in range(5):
        await b.publish("t", i)
    async with b.subscribe("t", 2, 10) as sub:
        await b.publish("t", 5)
        got = await sub.next_batch()
    assert [e.seq for e in got] == [3, 4, 5, 6]


async def test_publish_sequences_per_topic():
    """Each topic has its own gapless sequence."""
    b = MemoryBroker(10)
    seqs = [(await b.publish(t, None)).seq for t in "aabab"]
    assert seqs == [1, 2, 1, 3, 2]


async def test_overflow_closes_slow_subscriber_only():
    """A subscriber maxsize behind is closed with overflow; others keep receiving."""
    b = MemoryBroker(100)
    async with b.subscribe("t", None, 3) as slow, b.subscribe("t", None, 100) as fast:
        for i in range(5):
            await b.publish("t", i)
        with pytest.raises(SubscriptionClosed) as err:
            await slow.next_batch()
        assert err.value.reason == OVERFLOW
        assert [e.seq for e in await fast.next_batch()] == [1, 2, 3, 4, 5]


async def test_replay_does_not_count_against_buffer():
    """A long replay does not overflow a small live buffer."""
    b = MemoryBroker(100)
    for i in range(50):
        await b.publish("t", i)
    async with b.subscribe("t", 0, 5) as sub:
        await b.publish("t", 50)
        assert len(await sub.next_batch()) == 51


async def test_kick_ends_subscriptions_after_drain():
    """A kicked subscription still delivers what it buffered, then reports kicked."""
    b = MemoryBroker(10)
    async with b.subscribe("t", None, 10) as sub:
        await b.publish("t", 1)
        assert await b.kick("t") == 1
        assert [e.seq for e in await sub.next_batch()] == [1]
        with pytest.raises(SubscriptionClosed) as err:
            await sub.next_batch()
        assert err.value.reason == KICKED


async def test_wait_wakes_on_publish_and_times_out():
    """wait() returns True when an event arrives, False on timeout."""
    b = MemoryBroker(10)
    waiter = asyncio.ensure_future(b.wait("t", 0, 5))
    await asyncio.sleep(0)
    await b.publish("t", 1)
    assert await waiter is True
    assert await b.wait("t", 1, 0.01) is False


async def test_watch_resolves_one_future_and_unwatch_lets_the_topic_go():
    """watch(): resolved at once when the topic is past ``after``, else by the next publish;
    unwatch() drops the waiter, and an empty topic nobody holds is reclaimed."""
    b = MemoryBroker(10)
    loop = asyncio.get_running_loop()
    parked: asyncio.Future[None] = loop.create_future()
    unwatch = await b.watch("w", 0, parked)
    assert (parked.done(), b.stats()["waiters"], b.stats()["topics"]) == (False, 1, 1)
    unwatch()
    assert (b.stats()["waiters"], b.stats()["topics"]) == (0, 0)
    woken: asyncio.Future[None] = loop.create_future()
    unwatch = await b.watch("t", 0, woken)
    await b.publish("t", 1)
    assert woken.done()
    unwatch()
    past: asyncio.Future[None] = loop.create_future()
    (await b.watch("t", 0, past))()
    assert past.done() and b.stats()["waiters"] == 0


async def test_reading_unknown_topic_creates_nothing():
    """Reads of unknown topics answer empty and do not allocate a topic."""
    b = MemoryBroker(10)
    batch = await b.read("nope", None, 10)
    assert (batch.events, batch.cursor) == ([], 0)
    assert b.stats()["topics"] == 0


async def test_topic_limit():
    """Past max_topics with every topic held, new topics are refused with CapacityError."""
    b = MemoryBroker(10, max_topics=2)
    async with b.subscribe("a", None, 10), b.subscribe("b", None, 10):
        with pytest.raises(CapacityError):
            await b.publish("c", 1)


async def test_bad_topic_refused():
    """Invalid topic names never reach the broker's table."""
    with pytest.raises(BadTopic):
        await MemoryBroker(10).publish("a b", 1)


class Sink:
    """A sink that takes events (recording their seqs) while ``accept`` is True."""

    def __init__(self, accept: bool) -> None:
        self.accept = accept
        self.sunk: list[int] = []

    def __call__(self, event: object) -> bool:
        if self.accept:
            self.sunk.append(event.seq)  # type: ignore[attr-defined]
        return self.accept


async def _parked(sub: object) -> None:
    """Yield until the writer below has parked in next_batch (direct mode armed)."""
    for _ in range(100):
        if getattr(sub, "_direct", False):
            return
        await asyncio.sleep(0)
    raise AssertionError("writer never parked")


async def test_direct_sink_takes_live_events_only_while_writer_parked():
    """Replay goes through the buffer; live events go to the sink once the writer is idle."""
    b = MemoryBroker(100)
    await b.publish("t", 0)
    sunk: list[int] = []
    async with b.subscribe("t", 0, 10) as sub:
        sub.attach(lambda e: sunk.append(e.seq) is None)
        assert [e.seq for e in await sub.next_batch()] == [1]
        await b.publish("t", 1)  # the writer is not parked: buffered
        assert sunk == []
        assert [e.seq for e in await sub.next_batch()] == [2]
        writer = asyncio.ensure_future(sub.next_batch())
        await _parked(sub)
        await b.publish("t", 2)
        await b.publish("t", 3)
        assert sunk == [3, 4]
        assert sub.cursor == 4 and not writer.done()  # both went to the sink (sunk above)
        writer.cancel()


async def test_declined_event_is_buffered_and_later_ones_wait_behind_it():
    """After a sink declines, nothing goes direct until the writer has taken the backlog."""
    b = MemoryBroker(100)
    sink = Sink(accept=False)
    sunk = sink.sunk

    async with b.subscribe("t", None, 10) as sub:
        sub.attach(sink)
        writer = asyncio.ensure_future(sub.next_batch())
        await _parked(sub)
        await b.publish("t", 1)  # declined -> buffered, writer woken
        sink.accept = True
        await b.publish("t", 2)  # must not overtake seq 1
        assert sunk == []
        assert [e.seq for e in await writer] == [1, 2]
        writer = asyncio.ensure_future(sub.next_batch())
        await _parked(sub)
        await b.publish("t", 3)
        assert sunk == [3]
        writer.cancel()


async def test_closed_subscription_ignores_sink():
    """A closed subscription delivers nothing more, direct or buffered."""
    b = MemoryBroker(100)
    sunk: list[int] = []
    async with b.subscribe("t", None, 10) as sub:
        sub.attach(lambda e: sunk.append(e.seq) is None)
        sub.close(KICKED)
        await b.publish("t", 1)
        assert sunk == []
        with pytest.raises(SubscriptionClosed):
            await sub.next_batch()


async def test_park_without_a_task_until_a_declined_event_or_close():
    """park(): live events go to the sink; a declined one is buffered and calls on_wake once."""
    b = MemoryBroker(100)
    await b.publish("t", 0)
    sink = Sink(accept=True)
    sunk = sink.sunk
    woken: list[int] = []

    async with b.subscribe("t", 0, 10) as sub:
        sub.attach(sink)
        assert not sub.park(lambda: woken.append(1))  # the replay is buffered: take it first
        assert [e.seq for e in await sub.next_batch()] == [1]
        assert sub.park(lambda: woken.append(1))
        await b.publish("t", 1)
        assert sunk == [2] and woken == []
        sink.accept = False
        await b.publish("t", 2)  # declined: buffered, on_wake called
        sink.accept = True
        await b.publish("t", 3)  # must queue behind seq 3, not overtake it
        assert sunk == [2] and woken == [1]
        assert [e.seq for e in await sub.next_batch()] == [3, 4]
        assert sub.park(lambda: woken.append(2))
        sub.close(KICKED)
        assert woken == [1, 2]
        assert not sub.park(lambda: woken.append(3))
        with pytest.raises(SubscriptionClosed):
            await sub.next_batch()


async def test_detaching_the_sink_forgets_the_parked_callback():
    """After attach(None) nothing calls back into a session that has ended."""
    b = MemoryBroker(100)
    woken: list[int] = []
    async with b.subscribe("t", None, 10) as sub:
        sub.attach(lambda e: False)
        assert sub.park(lambda: woken.append(1))
        sub.attach(None)
        await b.publish("t", 1)
        assert woken == [] and sub.pending == 1


async def test_next_batch_limit_takes_a_prefix():
    """A limited batch takes the oldest events and leaves the rest, in order."""
    b = MemoryBroker(100)
    async with b.subscribe("t", None, 10) as sub:
        for i in range(5):
            await b.publish("t", i)
        assert [e.seq for e in await sub.next_batch(2)] == [1, 2]
        assert sub.pending == 3 and sub.cursor == 2
        assert [e.seq for e in await sub.next_batch()] == [3, 4, 5]


async def test_park_arms_direct_and_wakes_once_for_declined_events_and_close():
    """A writer parked with park() gets live events through the sink; a declined event or the
    close calls its waker once; park() refuses while something is buffered or closed."""
    b = MemoryBroker(100)
    sink = Sink(accept=True)
    sunk = sink.sunk
    woken: list[int] = []

    async with b.subscribe("t", None, 10) as sub:
        sub.attach(sink)
        assert sub.park(lambda: woken.append(1))
        await b.publish("t", 1)
        assert (sunk, woken, sub.cursor) == ([1], [], 1)
        sink.accept = False
        await b.publish("t", 2)  # declined: buffered, waker called
        await b.publish("t", 3)  # direct is off until drained; the waker is not called again
        assert (sunk, woken, sub.pending) == ([1], [1], 2)
        sub.unpark()
        assert not sub.park(lambda: woken.append(2))  # something to take first
        assert [e.seq for e in await sub.next_batch()] == [2, 3]
        sink.accept = True
        assert sub.park(lambda: woken.append(3))
        sub.close(KICKED)
        assert woken == [1, 3]
        sub.unpark()
        assert not sub.park(lambda: woken.append(4))
        with pytest.raises(SubscriptionClosed):
            await sub.next_batch()


async def test_fan_out_goes_in_subscription_order():
    """Live events reach subscribers in the order they subscribed (as in the Redis backend and
    Node's baseline), not in a set's hash order."""
    b = MemoryBroker(10)
    order: list[int] = []
    subs = [b.subscribe("t", None, 10) for _ in range(64)]
    for i, cm in enumerate(subs):
        sub = await cm.__aenter__()
        sub.attach(lambda _e, i=i: order.append(i) is None)
        assert sub.park(lambda: None)
    await b.publish("t", 1)
    assert order == list(range(64))
    for cm in subs:
        await cm.__aexit__(None, None, None)
    await b.publish("t", 2)
    assert len(order) == 64  # unsubscribed: nothing more delivered


class RunSink(Sink):
    """A sink with ``run``: records each run it takes as a list of seqs."""

    def __init__(self, accept: bool) -> None:
        super().__init__(accept)
        self.runs: list[list[int]] = []

    def run(self, events: object) -> bool:
        if self.accept:
            self.runs.append([e.seq for e in events])  # type: ignore[attr-defined]
        return self.accept


async def test_a_burst_reaches_a_parked_writer_as_one_run():
    """publish_many: one run call per subscriber whose sink has run, one call per event for a
    sink without; a run of one is a plain feed; a declined run is buffered, in order."""
    b = MemoryBroker(100)
    sink, plain = RunSink(accept=True), Sink(accept=True)
    async with b.subscribe("t", None, 2) as sub, b.subscribe("t", None, 10) as other:
        sub.attach(sink, sink.run)
        other.attach(plain)
        writers = [asyncio.ensure_future(s.next_batch()) for s in (sub, other)]
        await _parked(sub)
        await _parked(other)
        events = await b.publish_many("t", [1, 2, 3])
        assert [e.seq for e in events] == [1, 2, 3]
        # Three events past a buffer of two: a run written whole never queues.
        assert sink.runs == [[1, 2, 3]] and sink.sunk == [] and sub.cursor == 3
        assert plain.sunk == [1, 2, 3]
        await b.publish_many("t", [4])
        assert sink.sunk == [4] and sink.runs == [[1, 2, 3]]
        sink.accept = False
        await b.publish_many("t", [5, 6])
        assert [e.seq for e in await writers[0]] == [5, 6]
        assert plain.sunk == [1, 2, 3, 4, 5, 6]
        writers[1].cancel()
    assert [e.seq for e in (await b.read("t", 0, 10)).events] == [1, 2, 3, 4, 5, 6]


async def test_a_run_is_not_given_to_a_closed_or_unparked_subscription():
    """A run follows feed's rules: nothing after close, buffered while the writer is busy."""
    b = MemoryBroker(100)
    sink = RunSink(accept=True)
    async with b.subscribe("t", None, 10) as sub:
        sub.attach(sink, sink.run)
        await b.publish_many("t", [1, 2])  # the writer is not parked: buffered
        assert sink.runs == [] and [e.seq for e in await sub.next_batch()] == [1, 2]
        sub.close(KICKED)
        await b.publish_many("t", [3, 4])
        assert sink.runs == [] and sink.sunk == []
