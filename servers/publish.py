"""Publishing, health and admin endpoints (transport-independent)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from feed.codec import loads
from feed.events import check_topic
from feed.exceptions import BadInput, PayloadTooLarge
from servers.deps import JSON, error_body, state

router = APIRouter()

TopicQuery = Annotated[str, Query(min_length=1, max_length=128)]


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


class InvalidJSON(BadInput):
    """The publish body is not JSON."""

    code = "invalid_json"


@router.post("/publish")
async def publish(request: Request, topic: TopicQuery) -> JSON:
    """Publish the JSON body as one event; answers ``{"topic", "seq"}``."""
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
    """Close every live stream (of ``topic``): clients must reconnect and resume. Lab use only."""
    st = state(request)
    if not st.settings.admin:
        return JSON(error_body("admin_disabled", "set PUSHLAB_ADMIN=1"), status_code=403)
    return JSON({"kicked": await st.broker.kick(topic)})
