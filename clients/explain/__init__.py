"""``pushlab explain``: the protocols' real bytes, captured on raw loopback sockets and decoded.

Pure parts (no sockets): :mod:`clients.explain.frames` (RFC 6455 frame encoder/decoder),
:mod:`clients.explain.http` (handshake maths, HTTP heads, chunked bodies, SSE fields).
I/O parts: :mod:`clients.explain.wire` (a blocking socket with a byte log) and one module per
subcommand (:mod:`~clients.explain.handshake`, :mod:`~clients.explain.ws_frames`,
:mod:`~clients.explain.sse`, :mod:`~clients.explain.poll`), each returning a JSON-able report.
"""
