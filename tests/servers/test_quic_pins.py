"""Pins of the aioquic internals servers/fastpath/quic.py and clients/_h3.py touch: one each.

aioquic 1.7.2 has no public accessor for these. On a failure after an upgrade, re-read the module
named in the test against the new aioquic, then update the pin.
"""

from __future__ import annotations

import inspect


def _sets(cls: type, *attrs: str) -> None:
    source = inspect.getsource(cls)
    missing = [a for a in attrs if f"self.{a} =" not in source and f"self.{a}:" not in source]
    assert not missing, f"{cls.__module__}.{cls.__qualname__} no longer sets {missing}"


def test_connection_keeps_streams_datagrams_and_paths():
    """fastpath.quic.unacked/datagrams_pending/peer read these QuicConnection attributes."""
    from aioquic.quic.connection import QuicConnection, QuicNetworkPath

    _sets(QuicConnection, "_streams", "_datagrams_pending", "_network_paths", "tls")
    _sets(QuicNetworkPath, "addr")


def test_stream_sender_buffers_unacked_bytes():
    """fastpath.quic.unacked: the sender's buffer holds bytes from the last ack to the end."""
    from aioquic.quic.stream import QuicStream, QuicStreamSender

    _sets(QuicStream, "sender")
    _sets(QuicStreamSender, "_buffer")
    assert "del self._buffer[:size]" in inspect.getsource(QuicStreamSender.on_data_delivery)


def test_server_keeps_its_transport():
    """fastpath.quic.listening_port reads QuicServer._transport."""
    from aioquic.asyncio.server import QuicServer

    _sets(QuicServer, "_transport")


def test_oversized_datagram_blocks_the_queue():
    """session.DATAGRAM_MAX_PAYLOAD exists because a datagram that does not fit a packet stops
    the loop without leaving the queue (QuicPacketBuilderStop, then break)."""
    from aioquic.quic.connection import QuicConnection

    source = inspect.getsource(QuicConnection._write_application)
    assert "self._datagrams_pending.popleft()" in source
    assert "except QuicPacketBuilderStop:\n                    break" in source


def test_client_reads_the_peer_certificate_and_sends_through_its_transport():
    """clients/_h3.py pins by tls._peer_certificate and counts at the transport's sendto."""
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.tls import Context

    _sets(Context, "_peer_certificate")
    assert "self._transport.sendto(data, addr)" in inspect.getsource(
        QuicConnectionProtocol.transmit
    )
