"""Long polling: ``GET /long-poll?topic=T&since=N&timeout=S`` holds the request until news.

Answers 200 (same body as /poll) as soon as an event with seq > N exists, or 204 with a
``Pushlab-Cursor`` header after S seconds (capped at ``long_poll_max_timeout_s``, and at the
token's remaining lifetime when auth is on). A client that goes away mid-wait is noticed at once
(its ``http.disconnect``) and its wait abandoned; when the server starts draining every wait
answers 204 at once.
"""

from __future__ import annotations

import asyncio
import functools

from starlette.requests import Request
from starlette.responses import Response

from feed.broker import resolve_waiter
from feed.codec import parse_cursor
from feed.events import check_topic
from feed.wire.contract import CURSOR_HEADER
from servers.admission import admit
from servers.connections import Conn
from servers.fastpath.bare import BareEndpoint
from servers.fastpath.disconnect import watch_disconnect
from servers.fastpath.rawsend import RAW_SEND
from servers.query import optional_positive_float, required_str
from servers.short_poll import answer
from servers.state import AppState, state

TRANSPORT = "long-poll"


async def _disconnected(request: Request) -> None:
    """Return when the client closes its side of the connection."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _park(
    request: Request, st: AppState, topic: str, cursor: int, wait_s: float, conn: Conn
) -> bool:
    """Wait on one future for whichever comes first: an event after ``cursor`` (the broker), the
    deadline (a timer), the drain (:class:`~servers.state.Shutdown`) or the client leaving
    (uvicorn's cycle: :mod:`servers.fastpath.disconnect`; elsewhere a task in ``receive()``, the
    only way ASGI tells it). True when the client left.

    One future per parked request, not a task per condition: at the long-poll knee the server is
    CPU-bound on per-request work, and three tasks started, woken and cancelled per request were
    a large part of it (before/after: results/ab-long-poll).
    """
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()
    try:
        unwatch = await st.broker.watch(topic, cursor, woken)
    except Exception:
        # The wait could not hold the topic (TopicLimit) or reach the broker: answered 503 by the
        # app's handler, nothing has been sent yet.
        conn.closing(503, "capacity")
        raise
    timer = loop.call_later(wait_s, resolve_waiter, woken)
    st.shutdown.park(woken)
    watch = watch_disconnect(request.scope.get(RAW_SEND), woken)
    left: asyncio.Task[None] | None = None
    if watch is None:
        left = asyncio.ensure_future(_disconnected(request))
        left.add_done_callback(functools.partial(resolve_waiter, woken))
    try:
        await woken
    finally:
        timer.cancel()
        st.shutdown.unpark(woken)
        unwatch()
        if watch is not None:
            watch.close()
        elif left is not None and not left.done():
            left.cancel()
    if watch is not None:
        return watch.gone
    if left is not None and left.done() and not left.cancelled():
        left.exception()  # retrieved: a receive() that failed means the client is gone as well
        return True
    return False


async def long_poll(request: Request) -> Response:
    """Wait for events after ``since``; 204 with the cursor when none came in time."""
    params = request.query_params
    topic = required_str(params, "topic")
    since = params.get("since")
    timeout = optional_positive_float(params, "timeout")
    principal = admit(request, TRANSPORT)
    st = state(request)
    check_topic(topic)
    cfg = st.settings
    wait_s = min(timeout or cfg.long_poll_timeout_s, cfg.long_poll_max_timeout_s)
    if principal is not None:
        wait_s = max(0.0, min(wait_s, principal.remaining()))
    batch = await st.broker.read(topic, parse_cursor(since), cfg.poll_batch)
    if not batch.events and batch.gap is None:
        client = (request.client.host, request.client.port) if request.client else None
        with st.conns.open(TRANSPORT, client) as conn:
            conn.user = principal.user if principal else None
            gone = await _park(request, st, topic, batch.cursor, wait_s, conn)
            if gone:
                conn.closing(499, "client_gone")
                return Response(status_code=499)
            batch = await st.broker.read(topic, batch.cursor, cfg.poll_batch)
            if not batch.events:
                conn.closing(204, "shutdown" if st.shutdown.is_set() else "timeout")
                return Response(status_code=204, headers={CURSOR_HEADER: str(batch.cursor)})
            conn.closing(200, "events")
            conn.events = len(batch.events)
    return answer(st, TRANSPORT, topic, batch)


# A plain Starlette route: FastAPI's dependency solving per request cost more than the rest of
# the handler (see servers/query.py); the answers are the same.
endpoint = BareEndpoint(long_poll)  # routed and served bare by servers.routes
