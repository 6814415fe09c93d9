"""Wire encodings of events and control messages; pure functions, no I/O.

Event JSON is produced once per publish (orjson, compact: it never contains a newline, which
matters because an SSE ``data:`` line may not contain one). Control messages share one shape,
``{"type": ..., ...}``; an event never has a top-level ``type`` key, which is how a WebSocket
client tells the two apart.
"""

from __future__ import annotations

from typing import Any

import msgpack
import orjson

from feed.events import EncodedEvent, FeedEvent, Gap
from feed.exceptions import BadCursor
from feed.wire.sse import event_block

MAX_SAFE_SEQ = 2**63 - 1


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return orjson.dumps(obj)


def loads(raw: bytes | str) -> Any:
    """Parse JSON; raises ``orjson.JSONDecodeError`` (a ``ValueError``) on bad input."""
    return orjson.loads(raw)


def encode_event(topic: str, seq: int, ts_ns: int, data: Any) -> EncodedEvent:
    """Build every wire form of one event."""
    body = orjson.dumps({"topic": topic, "seq": seq, "ts_ns": ts_ns, "data": data})
    # A copy of exactly its length (~90 ns): orjson's bytes keep the capacity of its output
    # buffer, 4 KiB at least, and history retains this object (RSS per retained 60-byte event
    # was ~4 KiB; experiments.history_memory, docs/protocol.md "Memory bounds").
    return encoded_from_json(topic, seq, ts_ns, b"%b" % body)


def encoded_from_json(topic: str, seq: int, ts_ns: int, body: bytes) -> EncodedEvent:
    """Wrap already-serialised event JSON (e.g. read back from a broker) without re-encoding."""
    return EncodedEvent(
        topic=topic,
        seq=seq,
        ts_ns=ts_ns,
        json=body,
        text=body.decode(),
        sse=event_block(seq, body),
    )


def msgpack_frame(event: EncodedEvent) -> bytes:
    """The event as MessagePack (same four keys as the JSON), encoded once per event and cached."""
    packed = event.packed
    if packed is None:
        packed = msgpack.packb(orjson.loads(event.json), use_bin_type=True)
        # The dataclass is frozen for sharing; this one cache slot is filled once, idempotently.
        object.__setattr__(event, "packed", packed)
    return packed


def decode_msgpack_event(raw: bytes) -> FeedEvent:
    """Parse a binary (MessagePack) event frame; raises ``ValueError`` if it is not one."""
    try:
        obj = msgpack.unpackb(raw, raw=False)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as exc:
        raise ValueError(f"not a MessagePack event: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError("not an event object")
    return decode_event(obj)


def decode_event(raw: bytes | str | dict[str, Any]) -> FeedEvent:
    """Parse and validate one event; raises ``ValueError`` if it is not one."""
    obj = raw if isinstance(raw, dict) else orjson.loads(raw)
    if not isinstance(obj, dict) or "type" in obj:
        raise ValueError("not an event object")
    topic, seq, ts_ns = obj.get("topic"), obj.get("seq"), obj.get("ts_ns")
    if not isinstance(topic, str) or not isinstance(seq, int) or not isinstance(ts_ns, int):
        raise ValueError("event needs topic:str, seq:int, ts_ns:int")
    if isinstance(seq, bool) or seq < 1:
        raise ValueError("event seq must be a positive integer")
    return FeedEvent(topic=topic, seq=seq, ts_ns=ts_ns, data=obj.get("data"))


def gap_from_dict(obj: dict[str, Any]) -> Gap:
    """Parse the ``recovered=false`` signal."""
    return Gap(
        topic=str(obj["topic"]),
        since=int(obj["since"]),
        oldest_seq=None if obj.get("oldest_seq") is None else int(obj["oldest_seq"]),
        last_seq=int(obj["last_seq"]),
        reason=str(obj["reason"]),
        resume_after=int(obj["resume_after"]),
    )


def control(kind: str, **fields: Any) -> bytes:
    """A control message (``ready``, ``gap``, ``error``, ``pong``...) as JSON bytes."""
    return orjson.dumps({"type": kind, **fields})


def parse_cursor(value: str | None, *, name: str = "since") -> int | None:
    """Parse a resume point: ``None`` stays ``None``; anything but a non-negative int fails."""
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise BadCursor(f"{name} must be a non-negative integer, got {value[:40]!r}")
    cursor = int(text)
    if cursor > MAX_SAFE_SEQ:
        raise BadCursor(f"{name} is out of range")
    return cursor
