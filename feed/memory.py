"""In-process broker: one history and one subscriber set per topic, all on one event loop."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

from feed.broker import KICKED, SHUTDOWN, Subscription
from feed.codec import encode_event
from feed.events import EncodedEvent, check_topic
from feed.exceptions import CapacityError
from feed.history import Batch, History


class _Topic:
    __slots__ = ("history", "subscribers", "waiters")

    def __init__(self, name: str, capacity: int) -> None:
        self.history = History(name, capacity)
        # Insertion-ordered (a dict as an ordered set): fan-out goes in subscription order, as
        # the Redis backend's and Node's do, not in a set's address-hash order.
        self.subscribers: dict[Subscription, None] = {}
        self.waiters: list[asyncio.Future[None]] = []


class _Subscribed:
    """``async with broker.subscribe(...)``: a plain object, as it lives as long as the stream.

    (An ``@asynccontextmanager`` keeps its generator frame and wrapper per open subscriber,
    ~450 B per idle socket; registration already happened in ``subscribe``.)
    """

    __slots__ = ("topic", "sub")

    def __init__(self, topic: _Topic, sub: Subscription) -> None:
        self.topic, self.sub = topic, sub

    async def __aenter__(self) -> Subscription:
        return self.sub

    async def __aexit__(self, *exc: object) -> None:
        self.topic.subscribers.pop(self.sub, None)


class MemoryBroker:
    """The default backend. Not shared across processes: see the Redis backend for that."""

    def __init__(self, history: int, max_topics: int = 10_000) -> None:
        self.capacity = history
        self.max_topics = max_topics
        self._topics: dict[str, _Topic] = {}
        self.published = 0

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """End every subscription with reason ``shutdown``."""
        await self.kick(None, SHUTDOWN)

    def _topic(self, name: str, create: bool = True) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            check_topic(name)
            if len(self._topics) >= self.max_topics:
                raise CapacityError(f"topic limit ({self.max_topics}) reached")
            topic = _Topic(name, self.capacity)
            if create:
                self._topics[name] = topic
        return topic

    async def publish(self, topic: str, data: Any) -> EncodedEvent:
        """Sequence, retain and fan out one event."""
        t = self._topic(topic)
        event = encode_event(topic, t.history.last_seq + 1, time.time_ns(), data)
        self.append(t, event)
        return event

    def append(self, t: _Topic, event: EncodedEvent) -> None:
        """Retain an already-sequenced event and deliver it."""
        t.history.append(event)
        self.published += 1
        for sub in t.subscribers:
            sub.feed(event)
        if t.waiters:
            waiters, t.waiters = t.waiters, []
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    async def read(self, topic: str, since: int | None, limit: int) -> Batch:
        """Events after ``since`` from history; reading never creates a topic."""
        return self._topic(topic, create=False).history.read(since, limit)

    async def wait(self, topic: str, after: int, timeout: float) -> bool:
        """Wait until the topic's last seq exceeds ``after``."""
        t = self._topic(topic)
        if t.history.last_seq > after:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        t.waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return t.history.last_seq > after
        finally:
            if fut in t.waiters:
                t.waiters.remove(fut)
        return True

    def subscribe(
        self, topic: str, since: int | None, maxsize: int
    ) -> AbstractAsyncContextManager[Subscription]:
        """Register and replay in one synchronous step, so no event falls in between."""
        t = self._topic(topic)
        start, gap = t.history.resolve(since)
        sub = Subscription(topic, maxsize, start, gap)
        sub.feed_many(t.history.after(start))
        t.subscribers[sub] = None
        return _Subscribed(t, sub)

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

    def restore(self, topics: dict[str, list[EncodedEvent]]) -> None:
        """Load retained events before serving (empty broker only): seqs continue from there."""
        if self._topics:
            raise RuntimeError("restore needs an empty broker")
        for name, events in topics.items():
            if not events:
                continue
            tail = events[-self.capacity :]
            t = self._topic(name)
            t.history = History(name, self.capacity, last_seq=tail[0].seq - 1)
            for event in tail:
                t.history.append(event)

    def stats(self) -> dict[str, Any]:
        """Topic and subscriber counts."""
        return {
            "backend": "memory",
            "topics": len(self._topics),
            "subscribers": sum(len(t.subscribers) for t in self._topics.values()),
            "waiters": sum(len(t.waiters) for t in self._topics.values()),
            "published": self.published,
        }
