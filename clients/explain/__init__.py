"""``pushlab explain``: the protocols' real bytes, captured on raw loopback sockets and decoded.

The bytes are built and decoded by the core's codecs (:mod:`feed.wire`: RFC 6455 frames and
handshake maths, HTTP heads and chunked bodies, SSE); this package adds the showing.
I/O parts: :mod:`clients.explain.wire` (a blocking socket with a byte log) and one module per
subcommand (:mod:`~clients.explain.handshake`, :mod:`~clients.explain.ws_frames`,
:mod:`~clients.explain.sse`, :mod:`~clients.explain.stream`, :mod:`~clients.explain.poll`), each
returning a JSON-able report.
"""
