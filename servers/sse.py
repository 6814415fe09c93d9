"""Server-Sent Events: ``GET /sse?topic=T&since=N`` streams ``text/event-stream``.

Each event is ``id: <seq>`` + ``data: <event JSON>``. The stream opens with ``retry:``, an
optional ``event: gap`` (recovered=false) and ``event: ready`` whose ``id`` is the resume cursor,
so even a client that has seen no event yet reconnects from the right place. The resume point is
``Last-Event-ID`` when present (a browser sends it on reconnect, while the URL keeps its original
``?since=``), else ``?since``. Keep-alive comments go out every ``keepalive_s``. The stream ends
with ``event: end`` when the server closes it (overflow, kick, shutdown); EventSource then
reconnects by itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Header, Request
from sse_starlette import EventSourceResponse

from feed.broker import Broker, Subscription
from feed.codec import control, dumps, parse_cursor, sse_control
from feed.events import check_topic
from feed.exceptions import SubscriptionClosed
from servers.deps import state

router = APIRouter()


async def _stream(
    broker: Broker, topic: str, since: int | None, buffer: int, retry_ms: int
) -> AsyncIterator[bytes]:
    async with broker.subscribe(topic, since, buffer) as sub:
        yield b"retry: %d\n\n" % retry_ms + _preamble(sub)
        try:
            while True:
                batch = await sub.next_batch()
                # One write per batch: under backlog this coalesces many events into one send.
                yield b"".join(e.sse for e in batch)
        except SubscriptionClosed as closed:
            yield sse_control("end", control("end", reason=closed.reason))


def _preamble(sub: Subscription) -> bytes:
    gap = sse_control("gap", dumps(sub.gap.as_dict())) if sub.gap else b""
    ready = sse_control("ready", control("ready", topic=sub.topic, cursor=sub.cursor), sub.cursor)
    return gap + ready


@router.get("/sse")
async def sse(
    request: Request,
    topic: str,
    since: str | None = None,
    last_event_id: str | None = Header(default=None),
) -> EventSourceResponse:
    """Open the event stream for ``topic``."""
    st = state(request)
    check_topic(topic)
    cursor = parse_cursor(last_event_id, name="Last-Event-ID") if last_event_id else None
    if cursor is None:
        cursor = parse_cursor(since)
    cfg = st.settings
    return EventSourceResponse(
        _stream(st.broker, topic, cursor, cfg.subscriber_buffer, cfg.sse_retry_ms),
        ping=cfg.keepalive_s,
        send_timeout=cfg.send_timeout_s,
    )
