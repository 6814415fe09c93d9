"""hypercorn 0.18's HTTP/3: tell a request that its client left.

hypercorn's ``H3Protocol`` hands only HEADERS and DATA to its streams. A client that gives up a
request (a long poll abandoned, an SSE page closed: STOP_SENDING and RESET_STREAM) or whose QUIC
connection ends (CONNECTION_CLOSE, the idle timeout) is never reported: the app's ``receive()``
never yields ``http.disconnect``, an SSE response keeps its subscription and writes into a
stream nobody reads until the process ends, and a write to a stream the peer stopped raises
aioquic's ``RuntimeError`` inside the app. hypercorn's ``H2Protocol`` reports the same cases
(``StreamClosed``); :class:`H3Streams` does it for HTTP/3, and drops writes to a stream that is
gone; it flushes the QUIC connection once per loop turn rather than after every write (below);
and it strips connection-specific response headers (``Connection: keep-alive``, which
sse-starlette sets), which RFC 9114 4.2 makes a malformed response: aioquic's client closes the
whole connection with H3_MESSAGE_ERROR on one (the h2 library strips them for hypercorn's
HTTP/2).

Shutdown: hypercorn's UDP server loop checks for the end only after a datagram arrives, and only
once every QUIC connection has gone, so a server with HTTP/3 on waited out its whole graceful
timeout on every stop. :class:`ClosingUDPServer` closes each QUIC connection (CONNECTION_CLOSE,
H3_NO_ERROR: the drain has already sent the goodbyes) when hypercorn's shutdown begins, then
wakes that loop. :func:`install` swaps both in for the names hypercorn looks up when it serves
QUIC. Pinned by tests/servers/test_fastpath_pins.py; the behaviour by
tests/servers/test_http3.py.
"""

from __future__ import annotations

import asyncio
import dataclasses

from aioquic.h3.connection import ErrorCode
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StopSendingReceived, StreamReset
from hypercorn.asyncio import run as hyper_run
from hypercorn.asyncio.udp_server import UDPServer
from hypercorn.events import RawData
from hypercorn.protocol import quic as hyper_quic
from hypercorn.protocol.events import (
    Body,
    Data,
    EndBody,
    EndData,
    Event,
    InformationalResponse,
    Response,
    StreamClosed,
    Trailers,
)
from hypercorn.protocol.h3 import H3Protocol

_WRITES = (InformationalResponse, Response, Body, Data, EndBody, EndData, Trailers)
# RFC 9114 4.2: connection-specific fields; a message carrying one is malformed.
_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


class H3Streams(H3Protocol):
    """``H3Protocol`` that closes a stream's request when the client resets it or leaves."""

    _flush: asyncio.Task[None] | None = None  # the pending flush of this connection

    async def handle(self, quic_event: QuicEvent) -> None:
        if isinstance(quic_event, StreamReset | StopSendingReceived):
            await self._gone(quic_event.stream_id)
        elif isinstance(quic_event, ConnectionTerminated):
            for stream_id in list(self.streams):
                await self._gone(stream_id)
        else:
            await super().handle(quic_event)

    async def stream_send(self, event: Event) -> None:
        if isinstance(event, _WRITES):
            if event.stream_id not in self.streams:
                return  # the client left; its bytes have nowhere to go
            if isinstance(event, InformationalResponse | Response):
                kept = [(k, v) for k, v in event.headers if k.lower() not in _HOP]
                event = dataclasses.replace(event, headers=kept)
            try:
                if isinstance(event, Body | Data):
                    # H3Protocol.stream_send, but one flush per loop turn: hypercorn flushes
                    # the whole QUIC connection after every write, and aioquic's
                    # datagrams_to_send walks every stream of it, so 100 SSE streams on one
                    # connection cost O(streams) per event (the protocols profile's `h3 shared`
                    # multiplex cell measures the result).
                    self.connection.send_data(event.stream_id, event.data, False)
                    self._flush_soon()
                else:
                    await super().stream_send(event)
            except (RuntimeError, ValueError):
                # aioquic refuses a write to a stream the peer stopped (STOP_SENDING reached
                # the connection, its event is not handled yet): the client left.
                await self._gone(event.stream_id)
            return
        await super().stream_send(event)

    def _flush_soon(self) -> None:
        if self._flush is None:
            self._flush = asyncio.get_running_loop().create_task(self._flush_now())

    async def _flush_now(self) -> None:
        # Cleared first: a write while this flush is sending schedules the next one.
        self._flush = None
        await self.send()

    async def _gone(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            await stream.handle(StreamClosed(stream_id=stream_id))


# Datagrams waiting for the QUIC protocol (hypercorn: 10).
UDP_QUEUE = 1024


class ClosingUDPServer(UDPServer):
    """hypercorn's UDP server that closes its QUIC connections when the shutdown begins."""

    def connection_made(self, transport: asyncio.DatagramTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # hypercorn queues 10 datagrams and drops the rest: ten clients' Initial packets at
        # once overflow it. A deeper queue, still bounded (the kernel's buffer is the next).
        self.protocol_queue = asyncio.Queue(UDP_QUEUE)
        self._closer = self.loop.create_task(self._close_at_shutdown())

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            # hypercorn never closes its UDP transport; the loop would warn at its end.
            if self.transport is not None:
                self.transport.close()

    async def _close_at_shutdown(self) -> None:
        await self.context.terminated.wait()
        protocol = getattr(self, "protocol", None)  # set when run() starts
        if protocol is not None:
            for conn in {id(c): c for c in protocol.connections.values()}.values():
                conn.quic.close(error_code=ErrorCode.H3_NO_ERROR, reason_phrase="shutdown")
                await protocol.send_all(conn)
                # Forget it now (its ConnectionTerminated comes after the closing period, from
                # its timer, and then finds no ids to remove) so the loop below sees idle.
                for cid in conn.cids:
                    protocol.connections.pop(cid, None)
                conn.cids = set()
        # An empty datagram: QuicProtocol ignores it (no QUIC header); the loop then re-checks.
        await self.protocol_queue.put(RawData(data=b"", address=("0.0.0.0", 0)))


def install() -> None:
    """Serve every later HTTP/3 connection of this process with :class:`H3Streams`, and every
    QUIC socket with :class:`ClosingUDPServer`."""
    hyper_quic.H3Protocol = H3Streams  # type: ignore[attr-defined]
    hyper_run.UDPServer = ClosingUDPServer  # type: ignore[attr-defined]
