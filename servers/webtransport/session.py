"""One WebTransport session: the feed written to a server-initiated unidirectional stream.

The stream carries newline-delimited JSON, the same bytes as every other transport's events
(``EncodedEvent.json``: orjson never writes a newline inside it, :mod:`feed.codec`), with the
control lines the others send: ``{"type": "ready", "cursor": N}`` first (after a ``gap`` line when
the cursor was not honoured) and ``{"type": "end", "reason": ...}`` last. Newlines rather than a
length prefix because the browser then parses it the way it parses the HTTP streaming transport
(``TextDecoderStream`` and a split on newline), and a reader can resynchronise on any line.

With ``?datagrams=1`` each event is one HTTP/3 datagram (RFC 9297) instead, still the same JSON;
the control lines stay on the stream, which is reliable. A datagram can be lost, so the client
sees holes in ``seq``; the server counts what it never sent (:class:`DatagramStats`): events too
big for one QUIC packet, and events dropped because datagrams were already queued past
``DATAGRAM_BUDGET`` (aioquic queues datagrams without bound, and one that does not fit a packet
would block the queue for good).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aioquic.h3.connection import ErrorCode

from feed.broker import OVERFLOW, Subscription
from feed.codec import control, dumps
from feed.events import EncodedEvent
from feed.exceptions import SubscriptionClosed
from feed.wire.contract import TOKEN_EXPIRED
from servers.fastpath.quic import datagrams_pending, unacked

if TYPE_CHECKING:
    from aioquic.h3.connection import H3Connection
    from aioquic.quic.connection import QuicConnection

    from servers.auth import Principal
    from servers.connections import Conn

# A QUIC packet here is at most 1,200 bytes (aioquic's default max_datagram_size, the RFC 9000
# minimum); short header, packet number, AEAD tag and the frame and H3 prefixes leave ~1,150.
DATAGRAM_MAX_PAYLOAD = 1_100
# Datagrams queued in aioquic and not yet in a packet; past this an event is dropped, not queued.
DATAGRAM_BUDGET = 256
# Bytes written to the stream and not yet acknowledged; past this the client is not reading:
# the subscription ends with ``overflow`` and the client resumes from history, as for the others.
STREAM_BUFFER_LIMIT = 1 << 20


@dataclass(slots=True)
class DatagramStats:
    """What datagram mode sent and what it did not send (over every session of a server)."""

    sent: int = 0
    too_big: int = 0
    over_budget: int = 0


def line(obj: bytes) -> bytes:
    return obj + b"\n"


def preamble(sub: Subscription) -> bytes:
    """A ``gap`` line when the cursor was not honoured, then the ``ready`` line."""
    gap = line(dumps({"type": "gap", **sub.gap.as_dict()})) if sub.gap else b""
    return gap + line(control("ready", topic=sub.topic, cursor=sub.cursor))


@dataclass(slots=True)
class Session:
    """Serves one accepted session until its subscription closes or its task is cancelled."""

    h3: H3Connection
    quic: QuicConnection
    session_id: int
    conn: Conn
    datagrams: bool
    stats: DatagramStats
    # Sends what aioquic has queued (the protocol's transmit()).
    flush: Callable[[], None]
    stream_id: int = -1

    async def run(self, sub: Subscription, principal: Principal | None) -> None:
        """Write ready/gap, then events, then ``end``."""
        flush = self.flush
        expiry = None
        if principal is not None:
            expiry = asyncio.get_running_loop().call_later(
                max(0.0, principal.remaining()), sub.close, TOKEN_EXPIRED
            )
        self.stream_id = self.h3.create_webtransport_stream(self.session_id, is_unidirectional=True)
        self._write(preamble(sub))
        flush()
        try:
            while True:
                batch = await sub.next_batch()
                if unacked(self.quic, self.stream_id) > STREAM_BUFFER_LIMIT:
                    sub.close(OVERFLOW)
                    continue
                if self.datagrams:
                    self._datagrams(batch)
                else:
                    self._write(b"".join(line(e.json) for e in batch))
                    self.conn.events += len(batch)
                flush()
        except SubscriptionClosed as closed:
            self.conn.closing(None, closed.reason)
            self._write(line(control("end", reason=closed.reason)), end=True)
            # The CONNECT stream's FIN ends the session (draft-ietf-webtrans-http3 §6).
            self.h3.send_data(self.session_id, b"", end_stream=True)
            flush()
        except asyncio.CancelledError:
            # The client ended the session or the connection: stop the stream (a no-op once the
            # connection is gone) rather than leave it open in aioquic's table.
            self.quic.reset_stream(self.stream_id, ErrorCode.H3_REQUEST_CANCELLED)
            flush()
            raise
        finally:
            if expiry is not None:
                expiry.cancel()

    def _write(self, data: bytes, *, end: bool = False) -> None:
        self.conn.bytes += len(data)
        self.quic.send_stream_data(self.stream_id, data, end_stream=end)

    def _datagrams(self, batch: list[EncodedEvent]) -> None:
        for event in batch:
            if len(event.json) > DATAGRAM_MAX_PAYLOAD:
                self.stats.too_big += 1
            elif datagrams_pending(self.quic) >= DATAGRAM_BUDGET:
                self.stats.over_budget += 1
            else:
                self.h3.send_datagram(self.session_id, event.json)
                self.stats.sent += 1
                self.conn.events += 1
                self.conn.bytes += len(event.json)
