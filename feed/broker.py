"""The broker seam: publish, read history, wait, subscribe. Backends implement :class:`Broker`.

A subscription starts with the replay of retained history after the resume point and continues
with live events, with no window in between: backends must register the subscriber and take the
replay atomically (the memory backend does both in one synchronous step).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from feed.events import EncodedEvent, Gap
from feed.exceptions import SubscriptionClosed
from feed.history import Batch

OVERFLOW = "overflow"
KICKED = "kicked"
SHUTDOWN = "shutdown"


class Subscription:
    """One subscriber's bounded buffer.

    The broker pushes synchronously with :meth:`feed`; the transport drains with
    :meth:`next_batch`, which returns everything buffered so a writer can coalesce. A subscriber
    that falls ``maxsize`` events behind is closed with reason ``overflow`` instead of stalling the
    publisher or growing without bound; it can reconnect and resume from history.

    Direct delivery (:meth:`attach`): while the transport's writer is parked in
    :meth:`next_batch` with nothing buffered, :meth:`feed` hands each live event to a *sink*
    that writes it to the socket itself, so the publisher's loop delivers it without waking a
    task per subscriber. A sink returns False to decline (its socket's buffer is not empty, the
    connection is closing); the event is then buffered and the writer woken, and direct mode
    stays off until the writer has drained the buffer and parks again — so order is kept.

    A burst (several events published in one step, :meth:`Broker.publish_many`) reaches each
    subscriber as one :meth:`feed_run`; a sink attached with a ``run`` writes the whole run with
    one write, as Node's http corks a response's writes until the next tick. Under load the
    ticker falls behind and publishes bursts, so each delivery costs less just when it matters.

    A writer can also park without staying a task (:meth:`park`): an SSE stream waiting for its
    client's disconnect, an idle WebSocket's writer that is only started again when needed. Direct
    mode is armed the same way and a callback, called once when an event is buffered or the
    subscription closes, replaces the future.
    """

    # One per subscriber: 10,000 idle sockets hold 10,000 of these (docs/performance.md).
    __slots__ = (
        "topic",
        "maxsize",
        "cursor",
        "gap",
        "closed_reason",
        "_buf",
        "_replayed",
        "_waiter",
        "_on_wake",
        "_sink",
        "_run",
        "_direct",
    )

    def __init__(self, topic: str, maxsize: int, cursor: int, gap: Gap | None = None) -> None:
        self.topic = topic
        self.maxsize = maxsize
        self.cursor = cursor
        self.gap = gap
        self.closed_reason: str | None = None
        # A list, not a deque: the writer takes the whole buffer at once (a swap), and an empty
        # deque preallocates a 64-slot block (~600 B) that an idle subscriber never uses.
        self._buf: list[EncodedEvent] = []
        self._replayed = 0
        self._waiter: asyncio.Future[None] | None = None
        self._on_wake: Callable[[], None] | None = None
        self._sink: Callable[[EncodedEvent], bool] | None = None
        self._run: Callable[[Sequence[EncodedEvent]], bool] | None = None
        # True only while the writer is parked with an empty buffer and a sink is attached.
        self._direct = False

    def attach(
        self,
        sink: Callable[[EncodedEvent], bool] | None,
        run: Callable[[Sequence[EncodedEvent]], bool] | None = None,
    ) -> None:
        """Set (or with None remove) the direct-delivery sink, and optionally its ``run`` (several
        events in one write, all or none); neither may raise."""
        self._sink = sink
        self._run = run if sink is not None else None
        if sink is None:
            self._direct = False
            self._on_wake = None

    def park(self, on_wake: Callable[[], None]) -> bool:
        """Park the writer without a task; False (not parked) when there is something to take.

        While parked, live events go to the sink; ``on_wake`` is called once (synchronously, from
        :meth:`feed` or :meth:`close`) when an event is buffered or the subscription closes, and
        must get a writer to :meth:`next_batch`.
        """
        if self._buf or self.closed_reason is not None or self._waiter is not None:
            return False
        self._on_wake = on_wake
        self._direct = self._sink is not None
        return True

    def unpark(self) -> None:
        """End a :meth:`park` whose callback has not been called."""
        self._on_wake = None
        self._direct = False

    def feed(self, event: EncodedEvent) -> None:
        """Called by the broker for every event, in seq order."""
        if self.closed_reason is not None:
            return
        if self._direct and self._sink is not None and self._sink(event):
            self.cursor = event.seq
            return
        if len(self._buf) >= self.maxsize + self._replayed:
            self.close(OVERFLOW)
            return
        self._buf.append(event)
        self._wake()

    def feed_run(self, events: Sequence[EncodedEvent]) -> None:
        """Called by the broker for a burst of live events, in seq order (same rules as feed)."""
        if len(events) > 1 and self._direct and self._run is not None:
            if self.closed_reason is not None:
                return
            if self._run(events):
                self.cursor = events[-1].seq
                return
        for event in events:
            self.feed(event)

    def feed_many(self, events: list[EncodedEvent]) -> None:
        """Replay: queue history on top of ``maxsize`` (it is bounded by the history)."""
        self._buf.extend(events)
        self._replayed += len(events)
        if events:
            self._wake()

    def close(self, reason: str) -> None:
        """End the subscription; the transport sees :class:`SubscriptionClosed` once drained."""
        if self.closed_reason is None:
            self.closed_reason = reason
            if reason == OVERFLOW:
                # What is buffered is a prefix the client could still take, but delivering it
                # would keep a stalled connection busy: it resumes from history instead.
                self._buf.clear()
            self._wake()

    @property
    def pending(self) -> int:
        """Events buffered and not yet taken."""
        return len(self._buf)

    async def next_batch(self, limit: int = 1 << 30) -> list[EncodedEvent]:
        """Wait for at least one event and take up to ``limit`` of them."""
        while not self._buf:
            if self.closed_reason is not None:
                raise SubscriptionClosed(self.closed_reason)
            self._on_wake = None
            self._waiter = asyncio.get_running_loop().create_future()
            self._direct = self._sink is not None
            try:
                await self._waiter
            finally:
                self._waiter = None
                self._direct = False
        buf = self._buf
        if limit >= len(buf):
            batch, self._buf = buf, []
        else:
            batch = buf[:limit]
            del buf[:limit]
        self._replayed = max(0, self._replayed - len(batch))
        self.cursor = batch[-1].seq
        return batch

    def _wake(self) -> None:
        # Anything buffered must reach the socket before the next direct write.
        self._direct = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        on_wake, self._on_wake = self._on_wake, None
        if on_wake is not None:
            on_wake()


Unwatch = Callable[[], None]


def resolve_waiter(waiter: asyncio.Future[None], *_: object) -> None:
    """Resolve ``waiter`` unless it is done already (usable as a done-callback or a timer)."""
    if not waiter.done():
        waiter.set_result(None)


async def wait_for_news(broker: Broker, topic: str, after: int, timeout: float) -> bool:
    """:meth:`Broker.wait` for every backend: :meth:`Broker.watch` with a deadline."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    unwatch = await broker.watch(topic, after, waiter)
    try:
        async with asyncio.timeout(timeout):
            await waiter
        return True
    except TimeoutError:
        # Resolved in the same loop turn as the deadline: the news came in time.
        return waiter.done() and not waiter.cancelled()
    finally:
        unwatch()


class Broker(Protocol):
    """What servers need from a pub/sub backend."""

    async def start(self) -> None:
        """Connect and start background work."""

    async def close(self) -> None:
        """Close every subscription (reason ``shutdown``) and release resources."""

    async def publish(self, topic: str, data: Any) -> EncodedEvent:
        """Assign the next seq and a timestamp, retain, and fan out."""

    async def publish_many(self, topic: str, datas: Sequence[Any]) -> list[EncodedEvent]:
        """:meth:`publish` each in order, fanned out as one run per subscriber where it can."""

    async def read(self, topic: str, since: int | None, limit: int) -> Batch:
        """Events after ``since`` from history (``None``: from now)."""

    async def wait(self, topic: str, after: int, timeout: float) -> bool:
        """Wait until an event with seq > ``after`` exists; False on timeout
        (:func:`wait_for_news` on :meth:`watch`)."""

    async def watch(self, topic: str, after: int, waiter: asyncio.Future[None]) -> Unwatch:
        """Resolve ``waiter`` once an event with seq > ``after`` exists (at once if one does).

        The caller must call the returned function when it stops waiting, woken or not: it
        unregisters the waiter and lets the topic go. No task is started: a long poll waits on
        one future that a timer, a disconnect or the drain may resolve as well.
        """

    def subscribe(
        self, topic: str, since: int | None, maxsize: int
    ) -> AbstractAsyncContextManager[Subscription]:
        """Replay after ``since`` then live events, until the context exits."""

    async def kick(self, topic: str | None, reason: str = KICKED) -> int:
        """Close live subscriptions of ``topic`` (all topics if None); returns how many."""

    def stats(self) -> dict[str, Any]:
        """Counters for /healthz and metrics."""
