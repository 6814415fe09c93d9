"""Publishing, health and admin endpoints (transport-independent)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from feed.codec import loads
from feed.events import check_topic
from feed.exceptions import BadInput
from servers.state import JSON, read_limited, state

router = APIRouter()


class InvalidJSON(BadInput):
    """The publish body is not JSON."""

    code = "invalid_json"


@router.post("/publish")
async def publish(request: Request, topic: str) -> JSON:
    """Publish the JSON body as one event; answers ``{"topic", "seq"}``.

    The topic is checked by the one name rule (400 ``bad_topic``, as on every transport), not by
    query validation (which answered 422 for some bad topics and let others through).
    """
    st = state(request)
    check_topic(topic)
    body = await read_limited(request, st.settings.max_publish_bytes)
    try:
        data: Any = loads(body)
    except ValueError as exc:
        raise InvalidJSON(f"body is not valid JSON: {exc}") from None
    event = await st.broker.publish(topic, data)
    return JSON({"topic": topic, "seq": event.seq, "ts_ns": event.ts_ns})


@router.get("/healthz")
async def healthz(request: Request) -> JSON:
    """Liveness plus broker counters and live connections per transport."""
    st = state(request)
    return JSON(
        {"status": "ok", "broker": st.broker.stats(), "connections": st.conns.by_transport()}
    )


@router.post("/admin/kick")
async def kick(request: Request, topic: str | None = None) -> JSON:
    """Close every live stream (of ``topic``): clients must reconnect and resume. Admin only."""
    st = state(request)
    return JSON({"kicked": await st.broker.kick(topic)})
