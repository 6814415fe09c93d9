"""Direct delivery for the feed WebSocket: the publisher writes cached frames to the socket.

Through the ASGI path every event wakes the subscriber's writer task, which calls uvicorn's
``send``, which has ``websockets`` build the frame and writes it: per event and per subscriber. A
server-to-client frame without extensions is the same bytes for every subscriber
(:mod:`feed.frames` builds it once per event), so while a socket is idle and clean the broker's
publish loop can write it to uvicorn's transport itself (:meth:`feed.broker.Subscription.attach`).

This reaches into uvicorn's protocol object, so it is only done for the protocol classes checked
here (uvicorn 0.54's ``websockets-sansio`` and ``wsproto`` implementations, and
:mod:`servers.fastpath.ws_protocol`'s lean subclass of the first), recognised by exact
type from the ``send`` callable the server handed the app. Any other server, implementation or a
``send`` wrapped by a middleware gets no sink: events take the ASGI path as before.

A sink declines (returns False; never raises) unless the write is safe and cheap: handshake done,
no close sent or received, not disconnected, the transport not closing, uvicorn's flow control
not paused, the transport's write buffer empty and no extension negotiated. A non-empty buffer
means a slow reader: declined events go to the subscription's buffer and the writer task, where
the overflow bound (1013) and the send watchdog apply as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.protocols.websockets.wsproto_impl import WSProtocol
from websockets.protocol import State
from wsproto.connection import ConnectionState

from feed.codec import msgpack_frame
from feed.events import EncodedEvent
from feed.frames import ws_binary_frame, ws_text_frame
from feed.wire.ws import TEXT, encode_frame
from servers.connections import Conn
from servers.fastpath.ws_protocol import Flag, LeanSansIOProtocol


class DirectSink:
    """``sink(event) -> bool``: write the event's cached frame to the socket, or decline."""

    __slots__ = ("proto", "transport", "writable", "conn", "binary")
    # The protocol's WebSocket state machine value for OPEN (no close sent or received).
    open_state: Any = None

    def __init__(self, proto: Any, conn: Conn, binary: bool) -> None:
        self.proto = proto
        self.transport: asyncio.WriteTransport = proto.transport
        self.writable: asyncio.Event | Flag = proto.writable
        self.conn = conn
        self.binary = binary

    def write(self, frame: bytes) -> bool:
        """Write ``frame`` if it goes out now, in order and without buffering; else False.

        Runs once per event per idle socket: the checks are one expression, without a helper
        method per check.
        """
        proto, transport = self.proto, self.transport
        if (
            proto.close_sent
            or proto.disconnected
            or not self.writable.is_set()
            or transport.get_write_buffer_size()
            or transport.is_closing()
            or proto.conn.state is not self.open_state
        ):
            return False
        try:
            transport.write(frame)
        except Exception:
            return False  # the ASGI path will meet the same error and end the session
        return True

    def __call__(self, event: EncodedEvent) -> bool:
        if self.binary:
            if not self.write(event.ws_binary or ws_binary_frame(event)):
                return False
            size = len(msgpack_frame(event))
        else:
            if not self.write(event.ws_text or ws_text_frame(event)):
                return False
            size = len(event.json)
        conn = self.conn
        conn.events += 1
        conn.bytes += size
        conn.direct_events += 1
        return True

    def run(self, events: Sequence[EncodedEvent]) -> bool:
        """Several events' frames in one write (frames back to back are one valid stream)."""
        if self.binary:
            if not self.write(b"".join([e.ws_binary or ws_binary_frame(e) for e in events])):
                return False
            size = sum(len(msgpack_frame(e)) for e in events)
        else:
            if not self.write(b"".join([e.ws_text or ws_text_frame(e) for e in events])):
                return False
            size = sum(len(e.json) for e in events)
        conn = self.conn
        conn.events += len(events)
        conn.bytes += size
        conn.direct_events += len(events)
        return True

    def write_control(self, payload: bytes) -> bool:
        """A control message (JSON text frame) when the socket is ready, else False."""
        return self.write(encode_frame(TEXT, payload))


class _SansIOSink(DirectSink):
    __slots__ = ()
    open_state = State.OPEN


class _WsprotoSink(DirectSink):
    __slots__ = ()
    open_state = ConnectionState.OPEN


def direct_sink(send: object, conn: Conn, binary: bool) -> DirectSink | None:
    """A sink for the socket behind ``send`` (after ``accept``), or None when not known safe."""
    proto: Any = getattr(send, "__self__", None)
    kind = type(proto)
    if kind is LeanSansIOProtocol or kind is WebSocketsSansIOProtocol:
        # Extensions are agreed in the handshake: with permessage-deflate every frame must go
        # through the connection's compressor (and its context), never as shared bytes.
        if not proto.handshake_complete or proto.conn.extensions:
            return None
        return _SansIOSink(proto, conn, binary)
    if kind is WSProtocol:
        # wsproto keeps the agreed extensions private; uvicorn only ever offers
        # permessage-deflate, and only when configured, so the configuration decides.
        if not proto.handshake_complete or proto.config.ws_per_message_deflate:
            return None
        return _WsprotoSink(proto, conn, binary)
    return None
