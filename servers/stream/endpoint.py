"""HTTP streaming: ``GET /stream?topic=T&since=N`` streams ``application/x-ndjson``.

One JSON object per line (:mod:`feed.wire.ndjson`), the shape a browser reads with ``fetch()`` and
a ``ReadableStream`` (Centrifugo's ``uni_http_stream`` and MCP's streamable HTTP are this shape):

- an optional ``{"type":"gap",...}`` line when the cursor was not honoured (the same rule as every
  transport: :func:`feed.history.resolve`), then ``{"type":"ready","topic":T,"cursor":N}``;
- each event as its JSON line, the same bytes ``/poll`` and ``/sse`` carry (no ``type`` key);
- ``{"type":"heartbeat"}`` every ``keepalive_s`` (SSE's comment; no answer expected);
- ``{"type":"end","reason":R}`` when the server ends the stream (``kicked``, ``overflow``,
  ``shutdown``, ``token_expired``, ``send_timeout``), as SSE's ``event: end``.

Resume: the ``Pushlab-Cursor`` request header when present (fetch can set headers), else
``?since``. Unlike EventSource, nothing reconnects by itself: the client keeps the cursor.

Admission, the per-IP cap, the send watchdog and slow-reader release, the app-wide keep-alive
timer, direct delivery and the shutdown goodbye are the SSE stream's (:mod:`servers.sse.stream`,
with the NDJSON :class:`~servers.sse.stream.Framing` below).
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from feed.broker import Subscription
from feed.codec import control, dumps
from feed.events import EncodedEvent
from feed.frames import ndjson_chunk
from feed.settings import Settings
from feed.wire.contract import CURSOR_HEADER, NDJSON_TYPE
from feed.wire.ndjson import encode_line, encode_lines
from servers.fastpath.rawsend import RAW_SEND
from servers.fastpath.sse_direct import uvicorn_cycle
from servers.sse.endpoint import admit_stream
from servers.sse.stream import Framing, serve

TRANSPORT = "stream"
HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx: pass each line on at once
    (b"content-type", NDJSON_TYPE.encode()),
]
HEARTBEAT = encode_line(control("heartbeat"))


def opening(sub: Subscription, cfg: Settings) -> bytes:
    """``gap`` when the cursor was not honoured, then ``ready`` with the cursor."""
    gap = encode_line(dumps(sub.gap.as_dict())) if sub.gap else b""
    return gap + encode_line(control("ready", topic=sub.topic, cursor=sub.cursor))


def batch(events: list[EncodedEvent]) -> bytes:
    return encode_lines([e.json for e in events])


def size(event: EncodedEvent) -> int:
    return len(event.json) + 1


def end(reason: str) -> bytes:
    return encode_line(control("end", reason=reason))


NDJSON = Framing(TRANSPORT, HEADERS, opening, batch, size, ndjson_chunk, HEARTBEAT, end)


class _Endpoint:
    """``GET /stream?topic=T&since=N``: a bare ASGI app, as ``/sse`` is."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        a = admit_stream(scope, receive, TRANSPORT, CURSOR_HEADER)
        await serve(a, uvicorn_cycle(scope.get(RAW_SEND)), receive, send, NDJSON)


endpoint = _Endpoint()  # routed and served bare by servers.routes
