"""Wire bytes built once per event for direct delivery (:meth:`feed.broker.Subscription.attach`).

A server-to-client WebSocket frame is unmasked (RFC 6455 §5.1), so the same bytes serve every
subscriber of an uncompressed connection; an HTTP/1.1 chunk of an SSE stream likewise. Each form
is built by the first subscriber that needs it and cached on the :class:`EncodedEvent`.
"""

from __future__ import annotations

import struct

from feed.codec import msgpack_frame
from feed.events import EncodedEvent

OP_TEXT = 0x1
OP_BINARY = 0x2
_FIN = 0x80


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """One unfragmented, unmasked frame (FIN set, no RSV bits: no extension applies)."""
    n = len(payload)
    if n < 126:
        header = bytes((_FIN | opcode, n))
    elif n < 1 << 16:
        header = struct.pack("!BBH", _FIN | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", _FIN | opcode, 127, n)
    return header + payload


def ws_text_frame(event: EncodedEvent) -> bytes:
    """The event's JSON as a text frame, cached."""
    frame = event.ws_text
    if frame is None:
        frame = ws_frame(OP_TEXT, event.json)
        # Frozen for sharing; the cache slot is filled once, idempotently (as msgpack_frame).
        object.__setattr__(event, "ws_text", frame)
    return frame


def ws_binary_frame(event: EncodedEvent) -> bytes:
    """The event's MessagePack form as a binary frame, cached."""
    frame = event.ws_binary
    if frame is None:
        frame = ws_frame(OP_BINARY, msgpack_frame(event))
        object.__setattr__(event, "ws_binary", frame)
    return frame


def http_chunk(body: bytes) -> bytes:
    """``body`` as one HTTP/1.1 chunk (RFC 9112 §7.1)."""
    return b"%x\r\n%s\r\n" % (len(body), body)


def sse_chunk(event: EncodedEvent) -> bytes:
    """The event's SSE frame as one HTTP/1.1 chunk, cached."""
    chunk = event.sse_chunk
    if chunk is None:
        chunk = http_chunk(event.sse)
        object.__setattr__(event, "sse_chunk", chunk)
    return chunk
