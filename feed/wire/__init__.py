"""The wire, sans I/O: one codec per protocol, shared by servers, clients, load generators, tests.

- :mod:`feed.wire.ws`: RFC 6455 frames (encode, incremental decode) and the handshake key maths.
- :mod:`feed.wire.http1`: HTTP/1.1 heads (build, parse; one rule for repeated fields) and chunks.
- :mod:`feed.wire.sse`: the SSE encoder the server uses and an incremental parser.
- :mod:`feed.wire.ndjson`: NDJSON lines (``/stream``): the encoder, an incremental splitter.
- :mod:`feed.wire.contract`: subprotocols, headers, close codes, paths, transports.
"""
