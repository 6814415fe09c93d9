"""The event model: what every transport delivers.

An event is ``{"topic": str, "seq": int, "ts_ns": int, "data": <JSON>}``. ``seq`` starts at 1 per
topic and grows by exactly one per published event; ``ts_ns`` is the server's ``time.time_ns()`` at
publish time, the reference for end-to-end latency. See docs/protocol.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from feed.exceptions import BadTopic
from feed.names import TOPIC_MAX_LEN, is_name, rule


def check_topic(topic: str) -> str:
    """Return ``topic`` if it is a valid topic name, else raise :class:`BadTopic`."""
    if not is_name(topic, TOPIC_MAX_LEN):
        raise BadTopic(f"topic must be {rule(TOPIC_MAX_LEN)}, got {topic[:40]!r}")
    return topic


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One published event, as clients see it."""

    topic: str
    seq: int
    ts_ns: int
    data: Any


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """A published event with its wire forms, computed once and shared by every subscriber.

    Fan-out cost must not grow with serialisation per subscriber, so the JSON text and the SSE
    frame are built at publish time and only referenced afterwards. The MessagePack form is built
    lazily by the first binary subscriber (:func:`feed.codec.msgpack_frame`) and cached here, so a
    feed nobody reads as binary never pays for it and one that does pays once per event.
    """

    topic: str
    seq: int
    ts_ns: int
    json: bytes
    text: str = field(repr=False)
    sse: bytes = field(repr=False)
    packed: bytes | None = field(default=None, repr=False, compare=False)
    # Direct-delivery wire forms (:mod:`feed.frames`), cached like ``packed``.
    ws_text: bytes | None = field(default=None, repr=False, compare=False)
    ws_binary: bytes | None = field(default=None, repr=False, compare=False)
    sse_chunk: bytes | None = field(default=None, repr=False, compare=False)
    ndjson_chunk: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Gap:
    """The explicit "you missed events" signal (``recovered=false``).

    ``reason`` is ``"expired"`` when the resume point is older than the retained history, and
    ``"ahead"`` when it is newer than anything published (typically: the server restarted with an
    in-memory history). In both cases delivery restarts after ``resume_after``.
    """

    topic: str
    since: int
    oldest_seq: int | None
    last_seq: int
    reason: str
    resume_after: int

    def as_dict(self) -> dict[str, Any]:
        """The JSON form sent on the wire."""
        return {
            "type": "gap",
            "recovered": False,
            "topic": self.topic,
            "since": self.since,
            "oldest_seq": self.oldest_seq,
            "last_seq": self.last_seq,
            "reason": self.reason,
            "resume_after": self.resume_after,
        }
