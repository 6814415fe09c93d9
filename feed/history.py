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


class History:
    """A ring buffer of the last ``capacity`` events of one topic, indexed by seq in O(1)."""

    def __init__(self, topic: str, capacity: int, last_seq: int = 0) -> None:
        if capacity < 1:
            raise ValueError("history capacity must be at least 1")
        self.topic = topic
        self.capacity = capacity
        self._ring: list[EncodedEvent | None] = [None] * capacity
        self._last = last_seq
        self._count = 0

    @property
    def last_seq(self) -> int:
        """Seq of the newest event (0 before any)."""
        return self._last

    @property
    def oldest_seq(self) -> int | None:
        """Seq of the oldest retained event, or None when empty."""
        return self._last - self._count + 1 if self._count else None

    def __len__(self) -> int:
        return self._count

    def append(self, event: EncodedEvent) -> None:
        """Add the next event; seqs must arrive gapless and in order."""
        if event.seq != self._last + 1:
            raise ValueError(f"expected seq {self._last + 1}, got {event.seq}")
        self._ring[event.seq % self.capacity] = event
        self._last = event.seq
        self._count = min(self._count + 1, self.capacity)

    def resolve(self, since: int | None) -> tuple[int, Gap | None]:
        """Turn a requested resume point into the point actually served, and the gap if any."""
        if since is None:
            return self._last, None
        oldest = self.oldest_seq
        first_available = oldest if oldest is not None else self._last + 1
        if since > self._last:
            reason = "ahead"
        elif since + 1 < first_available:
            reason = "expired"
        else:
            return since, None
        resume = first_available - 1
        return resume, Gap(self.topic, since, oldest, self._last, reason, resume)

    def read(self, since: int | None, limit: int) -> Batch:
        """Events with seq > ``since`` (at most ``limit``); ``since=None`` means "from now"."""
        start, gap = self.resolve(since)
        stop = min(self._last, start + limit)
        events = [self._at(seq) for seq in range(start + 1, stop + 1)]
        cursor = stop if events else start
        return Batch(events, cursor, stop < self._last, self._last, gap)

    def after(self, seq: int) -> list[EncodedEvent]:
        """All retained events with seq > ``seq`` (caller has resolved ``seq`` already)."""
        return [self._at(s) for s in range(seq + 1, self._last + 1)]

    def _at(self, seq: int) -> EncodedEvent:
        event = self._ring[seq % self.capacity]
        assert event is not None and event.seq == seq
        return event
