"""Memory bounds of the memory broker: history bytes, empty topics, reclamation, tombstones."""

import time
import tracemalloc

import pytest

from feed.codec import encode_event
from feed.exceptions import TopicLimit
from feed.history import History, retained_size
from feed.memory import MemoryBroker
from feed.settings import Settings
from feed.snapshot import Snapshot

BLOB = "x" * 10_000
# One event's charge, with room for the few bytes more that a longer seq takes.
COST = retained_size(encode_event("t", 1, time.time_ns(), BLOB)) + 10


def test_history_evicts_by_bytes_keeping_the_newest():
    """A topic's history stays under max_bytes, oldest out first; seqs and gaps still hold."""
    h = History("t", 1_000, max_bytes=5 * COST)
    for seq in range(1, 21):
        h.append(encode_event("t", seq, seq, BLOB))
    assert h.bytes <= 5 * COST
    assert (len(h), h.oldest_seq, h.last_seq) == (5, 16, 20)
    batch = h.read(3, 100)
    assert [e.seq for e in batch.events] == [16, 17, 18, 19, 20]
    assert batch.gap is not None and batch.gap.reason == "expired"


def test_one_event_over_the_budget_is_still_kept():
    """The newest event stays readable even when it alone exceeds max_bytes."""
    h = History("t", 10, max_bytes=1)
    h.append(encode_event("t", 1, 1, BLOB))
    h.append(encode_event("t", 2, 2, BLOB))
    assert [e.seq for e in h.read(0, 10).events] == [2]


async def test_total_budget_drains_least_recently_published_topic_first():
    """Over total_bytes the topic published to least recently loses its oldest events first."""
    b = MemoryBroker(1_000, history_bytes=10 * COST, total_bytes=10 * COST)
    for _ in range(6):
        await b.publish("o", BLOB)
    for _ in range(6):
        await b.publish("n", BLOB)
    assert b.held_bytes <= 10 * COST
    assert len((await b.read("n", 0, 100)).events) == 6
    old = await b.read("o", 0, 100)
    assert [e.seq for e in old.events] == [3, 4, 5, 6]
    assert old.gap is not None and old.gap.reason == "expired"
    assert b.stats()["history_bytes"] == b.held_bytes


async def test_empty_topics_cost_little():
    """A topic a subscriber holds before any publish costs a few hundred bytes, not a ring."""
    b = MemoryBroker(10_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        subs = [b.subscribe(f"t{i}", None, 10) for i in range(500)]
        per_topic = (tracemalloc.get_traced_memory()[0] - before) / len(subs)
    finally:
        tracemalloc.stop()
    # Each includes its Subscription and _Subscribed too; the preallocated ring was ~80 KB.
    assert per_topic < 2_000, per_topic


async def test_topics_nobody_holds_are_reclaimed():
    """An empty topic goes when its last subscriber or long-poll wait leaves."""
    b = MemoryBroker(10)
    async with b.subscribe("a", None, 10):
        assert b.stats()["topics"] == 1
    assert not await b.wait("w", 0, 0.001)
    assert b.stats()["topics"] == 0
    assert b.stats()["tombstones"] == 0  # nothing was published: nothing to remember


async def test_reclaimed_topic_continues_its_seqs():
    """A topic reclaimed to make room comes back after its last seq, and old cursors see a gap."""
    b = MemoryBroker(10, max_topics=1)
    for _ in range(3):
        await b.publish("a", 1)
    await b.publish("b", 1)  # room for b: a (idle) is reclaimed
    assert b.stats()["tombstones"] == 1
    caught_up = await b.read("a", 3, 10)
    assert (caught_up.events, caught_up.gap) == ([], None)
    assert (await b.publish("a", 1)).seq == 4
    old = await b.read("b", 0, 10)
    assert old.gap is not None and old.gap.reason == "expired"


async def test_tombstones_are_bounded_by_a_floor():
    """Past max_topics tombstones the oldest folds into a floor new topics start above."""
    b = MemoryBroker(10, max_topics=1)
    for name in ("a", "b", "c"):
        for _ in range(5):
            await b.publish(name, 1)
    assert b.stats()["tombstones"] == 1  # b's; a's is now the floor
    first = await b.publish("d", 1)
    assert first.seq == 6
    resumed = await b.read("a", 5, 10)
    assert resumed.gap is None  # a's last seq (5) is at the floor: nothing lost, nothing lies


async def test_held_topics_are_never_reclaimed_and_the_cap_refuses():
    """At max_topics with every topic held, a new one is a TopicLimit."""
    b = MemoryBroker(10, max_topics=2)
    async with b.subscribe("a", None, 10), b.subscribe("b", None, 10):
        await b.publish("a", 1)
        with pytest.raises(TopicLimit):
            b.subscribe("c", None, 10)
        with pytest.raises(TopicLimit):
            await b.publish("c", 1)
        assert (await b.read("c", None, 10)).cursor == 0  # reading never creates


async def test_subscribers_hold_few_empty_topics():
    """Subscribers may create topics, but only max_subscriber_topics empty ones at a time."""
    b = MemoryBroker(10, max_subscriber_topics=2)
    async with b.subscribe("a", None, 10), b.subscribe("b", None, 10):
        with pytest.raises(TopicLimit):
            b.subscribe("c", None, 10)
        assert (await b.publish("c", 1)).seq == 1  # publishers are not limited by it
        await b.publish("a", 1)
        async with b.subscribe("d", None, 10):  # a has an event now: room for one more
            pass


async def test_restore_respects_the_byte_budget():
    """A snapshot larger than the budget is restored to its newest events only."""
    events = [encode_event("t", seq, seq, BLOB) for seq in range(1, 11)]
    b = MemoryBroker(100, history_bytes=3 * COST)
    b.restore(Snapshot({"t": events}))
    assert [e.seq for e in (await b.read("t", 0, 100)).events] == [8, 9, 10]
    assert b.held_bytes <= 3 * COST


def test_budgets_are_validated():
    """A total budget below the per-topic one is a configuration error, said at start."""
    with pytest.raises(ValueError, match="history_total_bytes"):
        Settings(history_bytes=2, history_total_bytes=1)
    with pytest.raises(ValueError, match="max_subscriber_topics"):
        Settings(max_subscriber_topics=0)
