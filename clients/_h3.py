"""A client-side HTTP/3 connection with WebTransport on (aioquic), for the client and explain.

:class:`H3Client` puts every HTTP/3 event in a queue (``None`` when the connection is gone) and
counts the UDP datagrams it sends and receives at the socket, which is all of QUIC an observer
can measure: the packets inside are encrypted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections.abc import Callable
from typing import Any, cast

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import H3Event
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, QuicEvent, StreamReset
from aioquic.quic.logger import QuicLogger
from cryptography.hazmat.primitives.serialization import Encoding

from feed.exceptions import FatalTransportError, TransportError


class Totals:
    """UDP payload bytes of every QUIC connection of this process: what a load generator reports
    for HTTP/3 cells, where the kernel keeps no per-socket byte counters (UDP has no
    ``tcp_info``)."""

    sent = received = 0
    connections = 0  # QUIC connections open now


UDP = Totals()


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
        self.udp: Counting
        self.sent: list[int] = []
        self.received: list[int] = []
        # Told of each stream the peer reset (aioquic's HTTP/3 layer drops those events).
        self.on_reset: Callable[[StreamReset], None] | None = None
        # The handshake's outcome. Not aioquic's ``wait_connected()``: aioquic 1.7.2 records a
        # completed handshake only when a waiter already exists, so a handshake that completes
        # before the waiting task first runs (Python 3.11's ``wait_for`` starts it a loop turn
        # later; on uvloop, with several handshakes at once, it often did) waits forever.
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted) and not self.handshake.done():
            self.handshake.set_result(None)
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
            if not self.handshake.done():
                self.handshake.set_exception(ConnectionError(event.reason_phrase))
            self.queue.put_nowait(None)
            return
        if isinstance(event, StreamReset) and self.on_reset is not None:
            self.on_reset(event)
        for h3_event in self.h3.handle_event(event):
            self.queue.put_nowait(h3_event)

    def connection_lost(self, exc: Exception | None) -> None:
        UDP.connections -= 1
        self.queue.put_nowait(None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's UDP transport is not asyncio's class.
        self.udp = Counting(cast(asyncio.DatagramTransport, transport), self)
        UDP.connections += 1
        super().connection_made(self.udp)

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        self.udp_received += 1
        self.bytes_received += len(data)
        UDP.received += len(data)
        if self.record:
            self.received.append(len(data))
        super().datagram_received(data, addr)

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

    def new_stream(self) -> int:
        """The id of the next client-initiated bidirectional stream (a request)."""
        return self._quic.get_next_available_stream_id()

    def cancel_stream(self, stream_id: int, error_code: int) -> None:
        """Stop both directions of a request stream (STOP_SENDING, RESET_STREAM) and send."""
        with contextlib.suppress(ValueError):  # the stream is already finished both ways
            self._quic.stop_stream(stream_id, error_code)
        self._quic.reset_stream(stream_id, error_code)
        self.transmit()

    def peer_cert_sha256(self) -> bytes | None:
        # aioquic has no public accessor (pinned by tests/servers/test_quic_pins.py).
        cert = self._quic.tls._peer_certificate
        return None if cert is None else hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()

    def abort(self) -> None:
        """Close the socket without a CONNECTION_CLOSE, as a crash or a lost path would."""
        self.udp.close()

    def shutdown(self) -> None:
        """CONNECTION_CLOSE, then the socket (not waiting out the closing period, whose timers
        then write to nothing)."""
        if not self.udp.is_closing():
            self.close()
            self.udp.close()


class Counting(asyncio.DatagramTransport):
    """The UDP transport, counting what is sent; sends after ``close()`` are dropped quietly
    (asyncio would log a warning for each past the fifth)."""

    def __init__(self, inner: asyncio.DatagramTransport, owner: H3Client) -> None:
        super().__init__()
        self.inner, self.owner = inner, owner

    def sendto(self, data: Any, addr: Any = None) -> None:
        if self.inner.is_closing():
            return
        owner = self.owner
        owner.udp_sent += 1
        owner.bytes_sent += len(data)
        UDP.sent += len(data)
        if owner.record:
            owner.sent.append(len(data))
        self.inner.sendto(data, addr)

    def close(self) -> None:
        self.inner.close()

    def is_closing(self) -> bool:
        return self.inner.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.inner.get_extra_info(name, default)

    def abort(self) -> None:
        self.inner.abort()


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
    ``serverCertificateHashes``) instead of a chain check; else ``verify`` as for the TCP clients:
    aioquic takes no ``SSLContext``, so the CA certificates loaded into one (``get_ca_certs``)
    become aioquic's trust anchors; ``True`` or a context without any loaded is aioquic's default
    (certifi).
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
        ders = verify.get_ca_certs(binary_form=True)
        if ders:
            config.load_verify_locations(
                cadata="".join(ssl.DER_cert_to_PEM_cert(d) for d in ders).encode()
            )
    loop = asyncio.get_running_loop()
    local = ("::", 0) if ":" in host else ("0.0.0.0", 0)
    _, protocol = await loop.create_datagram_endpoint(
        lambda: H3Client(QuicConnection(configuration=config), record=record), local_addr=local
    )
    assert isinstance(protocol, H3Client)
    try:
        protocol.connect((host, port))
        # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result and drops a
        # cancellation that arrives as the handshake completes, and the cancelled caller (a
        # client being closed) would then go on reconnecting.
        async with asyncio.timeout(timeout_s):
            await protocol.handshake
    except BaseException as exc:
        protocol.handshake.cancel()  # an outcome arriving later has nobody to tell
        protocol.abort()  # cancelled too: the socket is closed, not left to the GC
        if isinstance(exc, ConnectionError | TimeoutError):
            raise TransportError(f"QUIC handshake with {host}:{port} failed: {exc!r}") from None
        raise
    if cert_sha256 is not None and protocol.peer_cert_sha256() != cert_sha256:
        protocol.shutdown()
        raise FatalTransportError("the server certificate does not match the pinned hash")
    return protocol
