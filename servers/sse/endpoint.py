"""Server-Sent Events: ``GET /sse?topic=T&since=N`` streams ``text/event-stream``.

Each event is ``id: <seq>`` + ``data: <event JSON>``. The stream opens with ``retry:``, an
optional ``event: gap`` (recovered=false) and ``event: ready`` whose ``id`` is the resume cursor,
so even a client that has seen no event yet reconnects from the right place. The resume point is
``Last-Event-ID`` when present (a browser sends it on reconnect, while the URL keeps its original
``?since=``), else ``?since``. Keep-alive comments go out every ``keepalive_s``. The stream ends
with ``event: end`` when the server closes it (overflow, kick, shutdown, token_expired);
EventSource then reconnects by itself.

Admission (Origin, token, per-IP cap, draining) happens before the response starts, so refusals
are plain HTTP answers. At shutdown our own drain (:mod:`servers.runner`) sends the final
``event: end``; uvicorn cancels whatever is left after ``shutdown_timeout_s``.

Two implementations (``sse_impl``): sse-starlette's EventSourceResponse (the body generator
below; the response, trimmed, in :mod:`servers.fastpath.eventsource`) and pushlab's one-task
response (:mod:`servers.sse.stream`). Both use direct delivery
(:mod:`servers.fastpath.sse_direct`) when ``sse_direct`` is on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import HTTPException, Request
from starlette.types import Receive, Scope, Send

from feed.broker import Subscription
from feed.codec import control, parse_cursor
from feed.events import check_topic
from feed.exceptions import SubscriptionClosed, TooManyConnections
from feed.wire.contract import LAST_EVENT_ID, TOKEN_EXPIRED
from feed.wire.sse import named_block, retry_block
from servers.admission import admit
from servers.auth import Principal
from servers.connections import Conn
from servers.fastpath.eventsource import WatchedEventSourceResponse
from servers.fastpath.rawsend import RAW_SEND
from servers.fastpath.sse_direct import make_sink, uvicorn_cycle
from servers.query import required_str
from servers.sse.stream import TRANSPORT, Admitted, preamble, serve
from servers.state import AppState, state


async def _stream(
    st: AppState,
    client: tuple[str, int] | None,
    sub: Subscription,
    principal: Principal | None,
    raw_send: Send | None,
    conn_out: list[Conn],
) -> AsyncIterator[bytes]:
    cfg = st.settings
    with contextlib.ExitStack() as stack:
        try:
            conn = stack.enter_context(st.conns.open(TRANSPORT, client))
            # The response records a send timeout on it (sse-starlette closes this generator
            # from outside, where no exception reaches it).
            conn_out.append(conn)
        except TooManyConnections:
            # Lost a race with another stream from the same IP after the early check: the 200
            # is already out, so the refusal is an immediate end.
            yield named_block("end", control("end", reason="too_many_connections"))
            return
        conn.user = principal.user if principal else None
        expiry = None
        if principal is not None:
            expiry = asyncio.get_running_loop().call_later(
                max(0.0, principal.remaining()), sub.close, TOKEN_EXPIRED
            )
        yield retry_block(cfg.sse_retry_ms) + preamble(sub)
        # Resumed only once sse-starlette has sent the preamble: the response has started.
        if cfg.sse_direct:
            sink = make_sink(raw_send, conn)
            sub.attach(sink, sink.run if sink is not None else None)
        try:
            while True:
                batch = await sub.next_batch()
                # One write per batch: under backlog this coalesces many events into one send.
                chunk = b"".join(e.sse for e in batch)
                conn.events += len(batch)
                conn.bytes += len(chunk)
                yield chunk
        except SubscriptionClosed as closed:
            conn.closing(None, closed.reason)
            yield named_block("end", control("end", reason=closed.reason))
        finally:
            sub.attach(None)
            conn.closing(None, "client_gone")
            if expiry is not None:
                expiry.cancel()


def admit_stream(
    scope: Scope, receive: Receive, transport: str = TRANSPORT, cursor_header: str = LAST_EVENT_ID
) -> Admitted:
    """Every refusal, before the response starts (so each is a plain HTTP answer). The resume
    point is ``cursor_header`` when present, else ``?since``."""
    if scope["method"] != "GET":
        raise HTTPException(405, headers={"Allow": "GET"})
    request = Request(scope, receive)
    principal = admit(request, transport)
    st = state(request)
    params = request.query_params
    topic = check_topic(required_str(params, "topic"))
    header = request.headers.get(cursor_header.lower())
    cursor = parse_cursor(header, name=cursor_header) if header else None
    if cursor is None:
        cursor = parse_cursor(params.get("since"))
    client = (request.client.host, request.client.port) if request.client else None
    # Checked again when the stream registers; this early check makes the refusal a real 429.
    st.conns.check_ip(client[0] if client else "unknown", transport)
    return Admitted(st, client, topic, cursor, principal)


class _Endpoint:
    """``GET /sse?topic=T&since=N``: open the event stream for ``topic``.

    A class instance, so that Starlette runs it as a bare ASGI app: no request_response or
    FastAPI dependency frames (and their AsyncExitStacks) kept alive for a stream's lifetime.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        a = admit_stream(scope, receive)
        cfg = a.st.settings
        raw_send = scope.get(RAW_SEND)
        cycle = uvicorn_cycle(raw_send) if cfg.sse_impl == "pushlab" else None
        if cycle is not None:
            await serve(a, cycle, receive, send)
            return
        # Subscribed before the response starts, so the topic limit is a plain 503 answer (it
        # was an HTTP 200 cut short, "Expected ASGI message 'http.response.body'").
        async with a.st.broker.subscribe(a.topic, a.cursor, cfg.subscriber_buffer) as sub:
            conn: list[Conn] = []
            response = WatchedEventSourceResponse(
                _stream(a.st, a.client, sub, a.principal, raw_send, conn),
                st=a.st,
                conn=conn,
                ping=cfg.keepalive_s,
            )
            await response(scope, receive, send)


endpoint = _Endpoint()  # routed and served bare by servers.routes
