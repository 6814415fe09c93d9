"""WebTransport over HTTP/3 (aioquic): the feed on a QUIC unidirectional stream or datagrams."""
