"""Short polling: ``GET /poll?topic=T&since=N`` answers at once with what is new (maybe nothing)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from feed.codec import dumps, parse_cursor
from feed.events import check_topic
from feed.history import Batch
from servers.admission import admit
from servers.deps import JSON, AppState, state

router = APIRouter()


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


@router.get("/poll")
async def poll(
    request: Request,
    topic: str,
    since: str | None = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> JSON:
    """Events with seq > ``since``, at most ``limit`` (capped by ``poll_batch``)."""
    admit(request, "poll")
    st = state(request)
    check_topic(topic)
    cursor = parse_cursor(since)
    cap = min(limit or st.settings.poll_batch, st.settings.poll_batch)
    batch = await st.broker.read(topic, cursor, cap)
    return answer(st, "poll", topic, batch)


def answer(st: AppState, transport: str, topic: str, batch: Batch) -> JSON:
    """The 200 batch answer, counted once per answer in the metrics."""
    body = batch_body(topic, batch)
    if batch.events:
        st.metrics.events_sent.labels(transport).inc(len(batch.events))
        st.metrics.bytes_sent.labels(transport).inc(len(body))
    return JSON(body)
