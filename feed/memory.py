"""In-process broker: one history and one subscriber set per topic, all on one event loop.

Memory bounds (docs/protocol.md "Memory bounds"):

- Each topic's history holds at most ``history`` events and ``history_bytes`` bytes
  (:func:`feed.history.retained_size`); all histories together at most ``total_bytes``. Over the
  total, the topic published to least recently loses its oldest events first (an LRU of topics,
  O(1) per publish), so a burst on one topic drains idle topics before busy ones.
- A topic nobody holds (no subscriber, no long-poll wait) is *reclaimed* as soon as its history
  is empty (never published, or emptied by the total budget), and, when a new topic needs room
  at ``max_topics``, the least recently published one nobody holds goes, history and all. Only
  when every topic is held is a new one refused (:class:`TopicLimit`, HTTP 503).
- Subscribers may create topics (a client legitimately subscribes before the first publish),
  but at most ``max_subscriber_topics`` topics may be held open with no event in them.

Resume semantics survive reclamation: a reclaimed topic that had published leaves a tombstone,
its name and last seq (120 B + the name), and comes back continuing from that seq, so a cursor
into it gets the ``expired`` gap, never a seq that restarted at 1 under it. Tombstones are bounded
(``max_topics`` of them); the oldest folds its seq into a *floor*, and a topic without a
tombstone starts at the floor (0 until then), the rule the Redis backend uses after a reset. A
cursor is then at most answered with a gap it did not need (``expired`` from the floor), never
with events it already saw renumbered.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from feed.broker import (
    KICKED,
    SHUTDOWN,
    Subscription,
    Unwatch,
    resolve_waiter,
    wait_for_news,
)
from feed.codec import encode_event
from feed.events import EncodedEvent, check_topic
from feed.exceptions import TopicLimit
from feed.history import Batch, History
from feed.settings import (
    DEFAULT_HISTORY_BYTES,
    DEFAULT_HISTORY_TOTAL_BYTES,
    DEFAULT_MAX_SUBSCRIBER_TOPICS,
)
from feed.snapshot import Snapshot


def _nothing() -> None:
    """The unwatch of a wait that never registered."""


class _Topic:
    __slots__ = ("history", "subscribers", "waiters")

    def __init__(self, history: History) -> None:
        self.history = history
        # Insertion-ordered (a dict as an ordered set): fan-out goes in subscription order, as
        # the Redis backend's and Node's do, not in a set's address-hash order.
        self.subscribers: dict[Subscription, None] = {}
        # An ordered set, as subscribers: a waiter that stops waiting leaves in O(1).
        self.waiters: dict[asyncio.Future[None], None] = {}


class _Subscribed:
    """``async with broker.subscribe(...)``: a plain object, as it lives as long as the stream.

    (An ``@asynccontextmanager`` keeps its generator frame and wrapper per open subscriber,
    ~450 B per idle socket; registration already happened in ``subscribe``.)
    """

    __slots__ = ("broker", "topic", "sub")

    def __init__(self, broker: MemoryBroker, topic: _Topic, sub: Subscription) -> None:
        self.broker, self.topic, self.sub = broker, topic, sub

    async def __aenter__(self) -> Subscription:
        return self.sub

    async def __aexit__(self, *exc: object) -> None:
        self.topic.subscribers.pop(self.sub, None)
        self.broker.release(self.topic)


class MemoryBroker:
    """The default backend. Not shared across processes: see the Redis backend for that."""

    def __init__(
        self,
        history: int,
        max_topics: int = 10_000,
        *,
        history_bytes: int = DEFAULT_HISTORY_BYTES,
        total_bytes: int = DEFAULT_HISTORY_TOTAL_BYTES,
        max_subscriber_topics: int = DEFAULT_MAX_SUBSCRIBER_TOPICS,
    ) -> None:
        self.capacity = history
        self.max_topics = max_topics
        self.history_bytes = history_bytes
        self.total_bytes = total_bytes
        self.max_subscriber_topics = max_subscriber_topics
        self._topics: dict[str, _Topic] = {}
        # Topics holding events, least recently published first (global eviction order).
        self._lru: OrderedDict[str, _Topic] = OrderedDict()
        # Reclaimed topics' last seqs, oldest first; see the module docstring.
        self._tombstones: OrderedDict[str, int] = OrderedDict()
        self._floor = 0
        self.held_bytes = 0
        self.published = self.reclaimed = self.evicted = 0

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """End every subscription with reason ``shutdown``."""
        await self.kick(None, SHUTDOWN)

    def _topic(self, name: str, *, publisher: bool = False) -> _Topic:
        """The topic called ``name``, created if new (:class:`TopicLimit` when there is no room)."""
        topic = self._topics.get(name)
        if topic is not None:
            return topic
        check_topic(name)
        if not publisher and len(self._topics) - len(self._lru) >= self.max_subscriber_topics:
            # Every topic without events is held by a subscriber (idle ones are reclaimed).
            raise TopicLimit(
                f"{self.max_subscriber_topics} topics are already held open with no events"
            )
        if len(self._topics) >= self.max_topics and not self._reclaim_idle():
            raise TopicLimit(f"topic limit ({self.max_topics}) reached, every topic is held")
        last_seq = self._tombstones.pop(name, self._floor)
        topic = _Topic(History(name, self.capacity, last_seq, self.history_bytes))
        self._topics[name] = topic
        return topic

    def _last_seq(self, name: str) -> int:
        """Last seq of a topic that may not exist (reclaimed: its tombstone, else the floor)."""
        topic = self._topics.get(name)
        if topic is not None:
            return topic.history.last_seq
        return self._tombstones.get(name, self._floor)

    def release(self, topic: _Topic) -> None:
        """A holder left: reclaim the topic if nobody holds it and it has nothing to keep."""
        if not (topic.subscribers or topic.waiters or len(topic.history)):
            self._reclaim(topic)

    def _reclaim_idle(self) -> bool:
        """Make room at ``max_topics``: reclaim the least recently published topic nobody holds.

        Idle topics always hold events (empty idle ones are already gone), so they are all in
        the LRU; the walk skips held topics and is bounded by ``max_topics``.
        """
        for topic in self._lru.values():
            if not (topic.subscribers or topic.waiters):
                self._reclaim(topic)
                return True
        return False

    def _reclaim(self, topic: _Topic) -> None:
        history = topic.history
        del self._topics[history.topic]
        if self._lru.pop(history.topic, None) is not None:
            self.held_bytes -= history.bytes
        self._bury(history.topic, history.last_seq)
        self.reclaimed += 1

    def _bury(self, name: str, last_seq: int) -> None:
        """Remember where a topic's seqs continue; past ``max_topics``, the oldest joins the
        floor."""
        if last_seq > self._floor:
            self._tombstones[name] = last_seq
            while len(self._tombstones) > self.max_topics:
                _, seq = self._tombstones.popitem(last=False)
                self._floor = max(self._floor, seq)

    def _evict_total(self, newest: _Topic) -> None:
        """Over ``total_bytes``: oldest events of the least recently published topics first."""
        lru = self._lru
        while self.held_bytes > self.total_bytes:
            name, topic = next(iter(lru.items()))
            if topic is newest and len(topic.history) == 1:
                return  # the event just published stays readable
            self.held_bytes -= topic.history.evict_oldest()
            self.evicted += 1
            if not len(topic.history):
                del lru[name]
                self.release(topic)

    async def publish(self, topic: str, data: Any) -> EncodedEvent:
        """Sequence, retain and fan out one event."""
        t = self._topic(topic, publisher=True)
        event = encode_event(topic, t.history.last_seq + 1, time.time_ns(), data)
        self.append(t, event)
        return event

    async def publish_many(self, topic: str, datas: Sequence[Any]) -> list[EncodedEvent]:
        """Sequence and retain each, then give every subscriber the burst as one run."""
        t = self._topic(topic, publisher=True)
        events = []
        for data in datas:
            event = encode_event(topic, t.history.last_seq + 1, time.time_ns(), data)
            self._retain(t, event)
            events.append(event)
        self.published += len(events)
        for sub in t.subscribers:
            sub.feed_run(events)
        self._wake_waiters(t)
        return events

    def append(self, t: _Topic, event: EncodedEvent) -> None:
        """Retain an already-sequenced event and deliver it."""
        self._retain(t, event)
        self.published += 1
        for sub in t.subscribers:
            sub.feed(event)
        self._wake_waiters(t)

    @staticmethod
    def _wake_waiters(t: _Topic) -> None:
        if t.waiters:
            waiters, t.waiters = t.waiters, {}
            for w in waiters:
                resolve_waiter(w)

    def _retain(self, t: _Topic, event: EncodedEvent) -> None:
        # O(1) per event: the byte delta, one LRU move, and eviction only when over the total.
        history = t.history
        before = history.bytes
        history.append(event)
        self.held_bytes += history.bytes - before
        lru = self._lru
        if event.topic in lru:
            lru.move_to_end(event.topic)
        else:
            lru[event.topic] = t
        if self.held_bytes > self.total_bytes:
            self._evict_total(t)

    async def read(self, topic: str, since: int | None, limit: int) -> Batch:
        """Events after ``since`` from history; reading never creates a topic."""
        t = self._topics.get(topic)
        if t is None:
            check_topic(topic)
            # A topic that does not exist (any more) reads as an empty history at its last seq.
            return History(topic, 1, self._last_seq(topic)).read(since, limit)
        return t.history.read(since, limit)

    async def wait(self, topic: str, after: int, timeout: float) -> bool:
        """Wait until the topic's last seq exceeds ``after``."""
        return await wait_for_news(self, topic, after, timeout)

    async def watch(self, topic: str, after: int, waiter: asyncio.Future[None]) -> Unwatch:
        """Register ``waiter`` on the topic (resolved at once if it is past ``after``)."""
        if self._last_seq(topic) > after:
            resolve_waiter(waiter)
            return _nothing
        t = self._topic(topic)
        t.waiters[waiter] = None

        def unwatch() -> None:
            t.waiters.pop(waiter, None)
            self.release(t)

        return unwatch

    def subscribe(
        self, topic: str, since: int | None, maxsize: int
    ) -> AbstractAsyncContextManager[Subscription]:
        """Register and replay in one synchronous step, so no event falls in between."""
        t = self._topic(topic)
        start, gap = t.history.resolve(since)
        sub = Subscription(topic, maxsize, start, gap)
        sub.feed_many(t.history.after(start))
        t.subscribers[sub] = None
        return _Subscribed(self, t, sub)

    async def kick(self, topic: str | None, reason: str = KICKED) -> int:
        """Close live subscriptions; their transports end the connections."""
        topics = self._topics.values() if topic is None else [self._topics.get(topic)]
        n = 0
        for t in topics:
            if t is None:
                continue
            for sub in list(t.subscribers):
                sub.close(reason)
                n += 1
        return n

    def export(self) -> list[EncodedEvent]:
        """Every retained event, topic by topic in seq order (for :mod:`feed.snapshot`)."""
        out: list[EncodedEvent] = []
        for t in self._topics.values():
            out.extend(t.history.after(t.history.last_seq - len(t.history)))
        return out

    def last_seqs(self) -> tuple[dict[str, int], int]:
        """Where seqs continue for topics without retained events (tombstones), and the floor."""
        marks = dict(self._tombstones)
        for name, t in self._topics.items():
            if not len(t.history) and t.history.last_seq > self._floor:
                marks[name] = t.history.last_seq  # held empty; nobody holds it after a restart
        return marks, self._floor

    def restore(self, snap: Snapshot) -> None:
        """Load a snapshot before serving (empty broker only): seqs continue from there."""
        if self._topics or self._tombstones:
            raise RuntimeError("restore needs an empty broker")
        self._floor = snap.floor
        for name, last_seq in snap.last_seqs.items():
            self._bury(name, last_seq)
        for name, events in snap.topics.items():
            if not events:
                continue
            tail = events[-self.capacity :]
            self._tombstones[name] = tail[0].seq - 1  # where _topic starts it
            t = self._topic(name, publisher=True)
            for event in tail:
                self._retain(t, event)

    def stats(self) -> dict[str, Any]:
        """Topic, subscriber and history counters (``history_bytes``: see ``retained_size``)."""
        return {
            "backend": "memory",
            "topics": len(self._topics),
            "history_bytes": self.held_bytes,
            "history_events": sum(len(t.history) for t in self._lru.values()),
            "tombstones": len(self._tombstones),
            "reclaimed": self.reclaimed,
            "evicted": self.evicted,
            "subscribers": sum(len(t.subscribers) for t in self._topics.values()),
            "waiters": sum(len(t.waiters) for t in self._topics.values()),
            "published": self.published,
        }
