"""Wire bytes built once per event for direct delivery (:meth:`feed.broker.Subscription.attach`).

A server-to-client WebSocket frame is unmasked (RFC 6455 §5.1), so the same bytes serve every
subscriber of an uncompressed connection; an HTTP/1.1 chunk of an SSE or NDJSON stream
likewise. Each form is built by the first subscriber that needs it and cached on the
:class:`EncodedEvent`; the bytes come from the one codec of each protocol (:mod:`feed.wire`).
"""

from __future__ import annotations

from feed.codec import msgpack_frame
from feed.events import EncodedEvent
from feed.wire.http1 import encode_chunk
from feed.wire.ndjson import encode_line
from feed.wire.ws import BINARY, TEXT, encode_frame


def ws_text_frame(event: EncodedEvent) -> bytes:
    """The event's JSON as a text frame, cached."""
    frame = event.ws_text
    if frame is None:
        frame = encode_frame(TEXT, event.json)
        # Frozen for sharing; the cache slot is filled once, idempotently (as msgpack_frame).
        object.__setattr__(event, "ws_text", frame)
    return frame


def ws_binary_frame(event: EncodedEvent) -> bytes:
    """The event's MessagePack form as a binary frame, cached."""
    frame = event.ws_binary
    if frame is None:
        frame = encode_frame(BINARY, msgpack_frame(event))
        object.__setattr__(event, "ws_binary", frame)
    return frame


def sse_chunk(event: EncodedEvent) -> bytes:
    """The event's SSE frame as one HTTP/1.1 chunk, cached."""
    chunk = event.sse_chunk
    if chunk is None:
        chunk = encode_chunk(event.sse)
        object.__setattr__(event, "sse_chunk", chunk)
    return chunk


def ndjson_chunk(event: EncodedEvent) -> bytes:
    """The event's JSON line (``/stream``) as one HTTP/1.1 chunk, cached."""
    chunk = event.ndjson_chunk
    if chunk is None:
        chunk = encode_chunk(encode_line(event.json))
        object.__setattr__(event, "ndjson_chunk", chunk)
    return chunk
