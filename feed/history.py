"""Bounded per-topic history: the resume buffer behind polls and reconnects."""

from __future__ import annotations

from dataclasses import dataclass

from feed.events import EncodedEvent, Gap


@dataclass(frozen=True, slots=True)
class Batch:
    """What a read from history returns.

    ``cursor`` is the resume point for the next read: the seq of the last event in ``events``, or
    where the read started when it is empty. ``more`` says events past ``cursor`` are already
    waiting (the batch hit its limit). ``gap`` is set when the requested point was not honoured.
    """

    events: list[EncodedEvent]
    cursor: int
    more: bool
    last_seq: int
    gap: Gap | None = None


def resolve(topic: str, since: int | None, oldest: int | None, last: int) -> tuple[int, Gap | None]:
    """The cursor rule, for every broker: the point served for a requested ``since``, and the gap.

    ``since=None`` means "from now" (``last``). A cursor ahead of ``last`` or older than the oldest
    retained event (``oldest``; None when nothing is retained) is not honoured: the stream resumes
    just before the first available event and the :class:`Gap` says why (``ahead``/``expired``).
    """
    if since is None:
        return last, None
    first_available = oldest if oldest is not None else last + 1
    if since > last:
        reason = "ahead"
    elif since + 1 < first_available:
        reason = "expired"
    else:
        return since, None
    resume = first_available - 1
    return resume, Gap(topic, since, oldest, last, reason, resume)


# What retaining one event costs beyond its three wire forms (JSON bytes, str, SSE frame): the
# EncodedEvent object, its seq and ts_ns ints, the object headers, the history's list slot and
# allocator rounding. sys.getsizeof adds up to ~290 B; the RSS of 20,000 retained 10-byte events
# (python -m experiments.history_memory --count 20000 --size 10) says ~400 B.
EVENT_OVERHEAD = 384


def retained_size(event: EncodedEvent) -> int:
    """The bytes one retained event is charged against the history budgets.

    Its wire forms built at publish time plus :data:`EVENT_OVERHEAD`, so that many tiny events
    cannot slip under a byte budget. The forms cached later by direct delivery and MessagePack
    subscribers are not charged (they are built after the event is retained); docs/protocol.md
    states what they add.
    """
    return len(event.json) + len(event.text) + len(event.sse) + EVENT_OVERHEAD


class History:
    """The last events of one topic: at most ``capacity`` of them and ``max_bytes`` (as
    :func:`retained_size` counts them), indexed by seq in O(1).

    Storage grows on demand (a list and the index of its oldest live slot, compacted when half
    of it is dead): an empty topic costs a few hundred bytes, not a preallocated ring. Eviction
    is always from the oldest end; the newest event is kept even when it alone is over
    ``max_bytes``, so a publish can always be read back. ``last_seq`` survives eviction, so a
    cursor that fell out is answered with the documented ``expired`` gap.
    """

    __slots__ = ("topic", "capacity", "max_bytes", "bytes", "_events", "_head", "_last")

    def __init__(
        self, topic: str, capacity: int, last_seq: int = 0, max_bytes: int = 1 << 62
    ) -> None:
        if capacity < 1 or max_bytes < 1:
            raise ValueError("history capacity and max_bytes must be at least 1")
        self.topic = topic
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.bytes = 0  # retained_size() of every event held
        self._events: list[EncodedEvent | None] = []
        self._head = 0  # index in _events of the oldest retained event
        self._last = last_seq

    @property
    def last_seq(self) -> int:
        """Seq of the newest event (0 before any)."""
        return self._last

    @property
    def oldest_seq(self) -> int | None:
        """Seq of the oldest retained event, or None when empty."""
        n = len(self)
        return self._last - n + 1 if n else None

    def __len__(self) -> int:
        return len(self._events) - self._head

    def append(self, event: EncodedEvent) -> None:
        """Add the next event (seqs must arrive gapless and in order), then evict to the bounds."""
        if event.seq != self._last + 1:
            raise ValueError(f"expected seq {self._last + 1}, got {event.seq}")
        events = self._events
        events.append(event)
        self._last = event.seq
        self.bytes += retained_size(event)
        # On the publish path: no len(self) (a Python-level call) in the loop.
        while (n := len(events) - self._head) > 1 and (
            n > self.capacity or self.bytes > self.max_bytes
        ):
            self.evict_oldest()

    def evict_oldest(self) -> int:
        """Drop the oldest retained event; returns the bytes freed (0 when empty)."""
        events, head = self._events, self._head
        if head == len(events):
            return 0
        event = events[head]
        assert event is not None
        events[head] = None
        head += 1
        if head == len(events):
            self._events, head = [], 0
        elif head >= 32 and 2 * head >= len(events):
            # Amortised O(1): each compaction moves at most as many slots as were evicted.
            del events[:head]
            head = 0
        self._head = head
        size = retained_size(event)
        self.bytes -= size
        return size

    def resolve(self, since: int | None) -> tuple[int, Gap | None]:
        """Turn a requested resume point into the point actually served, and the gap if any."""
        return resolve(self.topic, since, self.oldest_seq, self._last)

    def read(self, since: int | None, limit: int) -> Batch:
        """Events with seq > ``since`` (at most ``limit``); ``since=None`` means "from now"."""
        start, gap = self.resolve(since)
        stop = min(self._last, start + limit)
        events = self._slice(start, stop)
        cursor = stop if events else start
        return Batch(events, cursor, stop < self._last, self._last, gap)

    def after(self, seq: int) -> list[EncodedEvent]:
        """All retained events with seq > ``seq`` (caller has resolved ``seq`` already)."""
        return self._slice(seq, self._last)

    def _slice(self, after: int, upto: int) -> list[EncodedEvent]:
        """Retained events with ``after < seq <= upto`` (``after`` at or past the oldest - 1)."""
        if upto <= after:
            return []
        first = self._head + len(self) - (self._last - after)
        events = self._events[first : first + upto - after]
        assert events[0] is not None and events[0].seq == after + 1
        return events  # type: ignore[return-value]
