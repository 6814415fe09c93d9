"""The aioquic internals the WebTransport server reads (servers/webtransport/); aioquic 1.7.2
has no public accessor for any of them. Pinned by tests/servers/test_quic_pins.py."""

from __future__ import annotations

from aioquic.asyncio.server import QuicServer
from aioquic.quic.connection import QuicConnection


def unacked(quic: QuicConnection, stream_id: int) -> int:
    """Bytes of ``stream_id`` queued or in flight and not acknowledged yet."""
    stream = quic._streams.get(stream_id)
    return len(stream.sender._buffer) if stream is not None else 0


def datagrams_pending(quic: QuicConnection) -> int:
    """DATAGRAM frames queued and not yet in a packet (aioquic's queue has no bound)."""
    return len(quic._datagrams_pending)


def peer(quic: QuicConnection) -> tuple[str, int]:
    """The client's address (the first network path; aioquic's own example reads it so)."""
    addr = quic._network_paths[0].addr
    return str(addr[0]).removeprefix("::ffff:"), int(addr[1])


def listening_port(server: QuicServer) -> int:
    """The UDP port a started :class:`QuicServer` is bound to (port 0: the one the OS chose)."""
    transport = server._transport
    assert transport is not None
    return int(transport.get_extra_info("sockname")[1])
