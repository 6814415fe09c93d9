"""A client-side HTTP/3 connection with WebTransport on (aioquic), for the client and explain.

:class:`H3Client` puts every HTTP/3 event in a queue (``None`` when the connection is gone) and
counts the UDP datagrams it sends and receives at the socket, which is all of QUIC an observer
can measure: the packets inside are encrypted.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import H3Event
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, QuicEvent
from aioquic.quic.logger import QuicLogger
from cryptography.hazmat.primitives.serialization import Encoding

from feed.exceptions import FatalTransportError, TransportError


class H3Client(QuicConnectionProtocol):
    """One QUIC connection: HTTP/3 events in :attr:`queue`, UDP datagram sizes counted."""

    def __init__(self, *args: Any, record: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic, enable_webtransport=True)
        self.queue: asyncio.Queue[H3Event | None] = asyncio.Queue()
        self.terminated: ConnectionTerminated | None = None
        # Totals always; each datagram's size only when ``record`` (explain): a long-lived
        # client must not grow a list per packet.
        self.udp_sent = self.udp_received = self.bytes_sent = self.bytes_received = 0
        self.record = record
        self.sent: list[int] = []
        self.received: list[int] = []

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
            self.queue.put_nowait(None)
            return
        for h3_event in self.h3.handle_event(event):
            self.queue.put_nowait(h3_event)

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(None)

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        self.udp_received += 1
        self.bytes_received += len(data)
        if self.record:
            self.received.append(len(data))
        super().datagram_received(data, addr)

    def transmit(self) -> None:
        # aioquic's transmit(), with every datagram counted on its way to the socket.
        self._transmit_task = None
        if self._transport is None or self._transport.is_closing():
            return
        for data, addr in self._quic.datagrams_to_send(now=self._loop.time()):
            self.udp_sent += 1
            self.bytes_sent += len(data)
            if self.record:
                self.sent.append(len(data))
            self._transport.sendto(data, addr)
        timer_at = self._quic.get_timer()
        if self._timer is not None and self._timer_at != timer_at:
            self._timer.cancel()
            self._timer = None
        if self._timer is None and timer_at is not None:
            self._timer = self._loop.call_at(timer_at, self._handle_timer)
        self._timer_at = timer_at

    def open_session(
        self,
        authority: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        protocol: bytes = b"webtransport",
    ) -> int:
        """Send the extended CONNECT for a WebTransport session; its stream id is the session id.

        ``protocol`` other than ``webtransport`` (e.g. ``websocket``, RFC 9220) is for tests.
        """
        sid = self._quic.get_next_available_stream_id()
        request = [
            (b":method", b"CONNECT"),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            (b":protocol", protocol),
        ]
        self.h3.send_headers(sid, request + headers)
        self.transmit()
        return sid

    def peer_cert_sha256(self) -> bytes | None:
        cert = self._quic.tls._peer_certificate  # aioquic has no public accessor
        return None if cert is None else hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()

    def abort(self) -> None:
        """Close the socket without a CONNECTION_CLOSE, as a crash or a lost path would."""
        if self._transport is not None:
            self._transport.close()

    def shutdown(self) -> None:
        """CONNECTION_CLOSE, then the socket (not waiting out the closing period)."""
        if self._transport is not None and not self._transport.is_closing():
            self._quic.close()
            self.transmit()
            self._transport.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def connect(
    host: str,
    port: int,
    *,
    cert_sha256: bytes | None = None,
    verify: ssl.SSLContext | bool = True,
    timeout_s: float = 10.0,
    record: bool = False,
    quic_logger: QuicLogger | None = None,
) -> H3Client:
    """A QUIC + HTTP/3 connection to ``host:port``, handshake done.

    ``cert_sha256`` pins the server certificate by hash (as a browser's
    ``serverCertificateHashes``) instead of a chain check; else ``verify`` as for the TCP clients.
    """
    config = QuicConfiguration(
        is_client=True,
        alpn_protocols=H3_ALPN,
        max_datagram_frame_size=65536,
        server_name=host,
        quic_logger=quic_logger,
    )
    if cert_sha256 is not None or verify is False:
        config.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, ssl.SSLContext):
        raise FatalTransportError(
            "wt: pass cert_sha256 or verify=False; aioquic takes no SSLContext"
        )
    loop = asyncio.get_running_loop()
    local = ("::", 0) if ":" in host else ("0.0.0.0", 0)
    _, protocol = await loop.create_datagram_endpoint(
        lambda: H3Client(QuicConnection(configuration=config), record=record), local_addr=local
    )
    assert isinstance(protocol, H3Client)
    try:
        protocol.connect((host, port))
        await asyncio.wait_for(protocol.wait_connected(), timeout_s)
    except (ConnectionError, TimeoutError) as exc:
        protocol.abort()
        raise TransportError(f"wt: QUIC handshake with {host}:{port} failed: {exc!r}") from None
    if cert_sha256 is not None and protocol.peer_cert_sha256() != cert_sha256:
        protocol.shutdown()
        raise FatalTransportError("wt: the server certificate does not match the pinned hash")
    return protocol
