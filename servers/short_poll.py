"""Short polling: ``GET /poll?topic=T&since=N`` answers at once with what is new (maybe nothing)."""

from __future__ import annotations

from starlette.requests import Request

from feed.codec import dumps, parse_cursor
from feed.events import check_topic
from feed.history import Batch
from servers.admission import admit
from servers.fastpath.bare import BareEndpoint
from servers.query import optional_int, required_str
from servers.state import JSON, AppState, state


def batch_body(topic: str, batch: Batch) -> bytes:
    """The poll answer, spliced from each event's pre-encoded JSON (no re-serialisation)."""
    gap = dumps(batch.gap.as_dict()) if batch.gap else b"null"
    return (
        b'{"topic":%s,"events":[%s],"cursor":%d,"more":%s,"last_seq":%d,"recovered":%s,"gap":%s}'
        % (
            dumps(topic),
            b",".join(e.json for e in batch.events),
            batch.cursor,
            b"true" if batch.more else b"false",
            batch.last_seq,
            b"false" if batch.gap else b"true",
            gap,
        )
    )


async def poll(request: Request) -> JSON:
    """Events with seq > ``since``, at most ``limit`` (capped by ``poll_batch``)."""
    params = request.query_params
    topic = required_str(params, "topic")
    limit = optional_int(params, "limit", ge=1)
    admit(request, "poll")
    st = state(request)
    check_topic(topic)
    cursor = parse_cursor(params.get("since"))
    cap = min(limit or st.settings.poll_batch, st.settings.poll_batch)
    batch = await st.broker.read(topic, cursor, cap)
    return answer(st, "poll", topic, batch)


# A plain Starlette route, for the reason given in servers/query.py.
endpoint = BareEndpoint(poll)  # routed and served bare by servers.routes


def answer(st: AppState, transport: str, topic: str, batch: Batch) -> JSON:
    """The 200 batch answer, counted once per answer in the metrics."""
    body = batch_body(topic, batch)
    if batch.events:
        m = st.metrics
        m.child(m.events_sent, transport).inc(len(batch.events))
        m.child(m.bytes_sent, transport).inc(len(body))
    return JSON(body)
