"""The wire contract, once: the names and numbers both ends of a connection must agree on.

Servers, clients, load generators and tests import these instead of spelling them again
(docs/protocol.md describes what each means). The name rule lives in :mod:`feed.names`.
"""

from __future__ import annotations

# Transports, in the order tables list them, and the paths that serve them.
TRANSPORTS = ("poll", "long-poll", "sse", "ws", "stream")
PATHS = {
    "poll": "/poll",
    "long-poll": "/long-poll",
    "sse": "/sse",
    "ws": "/ws",
    "stream": "/stream",
}
PUBLISH_PATH = "/publish"

# WebTransport over HTTP/3 (servers/webtransport/): not in TRANSPORTS, whose entries are served on
# the HTTP/1.1 port; it has its own UDP port, which GET WEBTRANSPORT_INFO_PATH names with the
# certificate hash to pin.
WEBTRANSPORT = "wt"
WEBTRANSPORT_PATH = "/wt"
WEBTRANSPORT_INFO_PATH = "/webtransport"

# WebSocket subprotocols: JSON text frames, or MessagePack binary frames. A browser, which cannot
# set headers, offers ``bearer.<token>`` beside one of them to authenticate.
SUBPROTOCOL_JSON = "pushlab.v1"
SUBPROTOCOL_MSGPACK = "pushlab.msgpack.v1"
SUBPROTOCOLS = (SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON)
BEARER_PREFIX = "bearer."

# HTTP streaming (``/stream``): one JSON object per line (:mod:`feed.wire.ndjson`).
NDJSON_TYPE = "application/x-ndjson"

# HTTP headers. Field names are case-insensitive; the lower-cased form is what parsers key on.
# The cursor: a long poll's 204 carries it; a ``/stream`` request may send it to resume (fetch
# can set headers, so it needs no ``Last-Event-ID`` of its own).
CURSOR_HEADER = "Pushlab-Cursor"
LAST_EVENT_ID = "Last-Event-ID"

# ``reason`` of an ``end``/close when a stream's token expires.
TOKEN_EXPIRED = "token_expired"

# WebSocket close codes the server sends (RFC 6455 §7.4.1; 4029 is the lab's own).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_RESTART = 1012
CLOSE_TRY_AGAIN = 1013
CLOSE_RATE_LIMITED = 4029
