"""WebSocket: ``WS /ws?topic=T&since=N`` pushes one text frame per event.

Frames from the server: events (no ``type`` key), then control messages ``{"type": ...}``:
``ready`` (first frame, with the resume ``cursor``), ``gap`` (recovered=false), ``pong``,
``published`` and ``error``. Frames from the client: ``{"type": "ping", "id": x}`` and
``{"type": "publish", "data": ...}``; anything else gets an ``error`` frame and the connection stays
up, until ``ws_max_bad_messages`` such frames close it with 1008. A bad query is refused before the
upgrade with HTTP 400. Close codes: 1001 server shutdown, 1008 policy (garbage), 1012 kicked
(reconnect), 1013 slow consumer (fell ``subscriber_buffer`` events behind; reconnect and resume).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from feed.broker import KICKED, OVERFLOW, SHUTDOWN, Subscription
from feed.codec import control, dumps, loads, parse_cursor
from feed.events import EncodedEvent, check_topic
from feed.exceptions import BadInput, CapacityError, SubscriptionClosed
from servers.deps import JSON, AppState, error_body, state, status_for

router = APIRouter()

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_RESTART = 1012
CLOSE_TRY_AGAIN = 1013
CLOSE_FOR_REASON = {SHUTDOWN: CLOSE_GOING_AWAY, KICKED: CLOSE_RESTART, OVERFLOW: CLOSE_TRY_AGAIN}


@router.websocket("/ws")
async def ws_feed(websocket: WebSocket) -> None:
    """Subscribe this socket to a topic and push events until either side closes."""
    st = state(websocket)
    params = websocket.query_params
    try:
        topic = check_topic(params.get("topic", ""))
        since = parse_cursor(params.get("since"))
    except BadInput as exc:
        await deny(websocket, exc)
        return
    try:
        async with st.broker.subscribe(topic, since, st.settings.subscriber_buffer) as sub:
            await websocket.accept()
            await _serve(websocket, st, sub)
    except CapacityError as exc:
        await deny(websocket, exc)


async def deny(websocket: WebSocket, exc: Exception) -> None:
    """Refuse the upgrade with an HTTP error and a JSON body."""
    code = getattr(exc, "code", "unavailable")
    await websocket.send_denial_response(JSON(error_body(code, str(exc)), status_for(exc)))


async def _serve(websocket: WebSocket, st: AppState, sub: Subscription) -> None:
    if sub.gap:
        await websocket.send_text(dumps(sub.gap.as_dict()).decode())
    await websocket.send_text(control("ready", topic=sub.topic, cursor=sub.cursor).decode())
    reader = asyncio.ensure_future(_read(websocket, st, sub.topic))
    try:
        while True:
            batch = await _next_or_reader(sub, reader)
            if batch is None:
                return
            async with asyncio.timeout(st.settings.send_timeout_s):
                for event in batch:
                    await websocket.send_text(event.text)
    except SubscriptionClosed as closed:
        await websocket.close(CLOSE_FOR_REASON.get(closed.reason, CLOSE_RESTART), closed.reason)
    except WebSocketDisconnect:
        return  # the client left while we were sending: nothing to report
    finally:
        reader.cancel()


async def _next_or_reader(
    sub: Subscription, reader: asyncio.Future[None]
) -> list[EncodedEvent] | None:
    """The next batch, or None once the reader has finished (client gone or closed by policy)."""
    if reader.done():
        reader.result()
        return None
    nxt = asyncio.ensure_future(sub.next_batch())
    await asyncio.wait((nxt, reader), return_when=asyncio.FIRST_COMPLETED)
    if nxt.done():
        return nxt.result()
    nxt.cancel()
    reader.result()
    return None


async def _read(websocket: WebSocket, st: AppState, topic: str) -> None:
    """Handle client frames; returns when the client leaves or is closed for garbage."""
    bad = 0
    limit = st.settings.ws_max_bad_messages
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            reply = await _handle(st, topic, message)
            if reply.get("type") == "error":
                bad += 1
                if bad >= limit:
                    await websocket.close(CLOSE_POLICY, "too many bad messages")
                    return
            await websocket.send_text(dumps(reply).decode())
    except WebSocketDisconnect:
        return


async def _handle(st: AppState, topic: str, message: Any) -> dict[str, Any]:
    text = message.get("text")
    if text is None:
        return {"type": "error", "error": "unsupported", "detail": "binary frames are not accepted"}
    try:
        obj = loads(text)
    except ValueError:
        return {"type": "error", "error": "invalid_json", "detail": "frame is not JSON"}
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind == "ping":
        return {"type": "pong", "id": obj.get("id")}
    if kind == "publish" and "data" in obj:
        event = await st.broker.publish(topic, obj["data"])
        return {"type": "published", "seq": event.seq, "id": obj.get("id")}
    return {"type": "error", "error": "unknown_message", "detail": "expected type ping or publish"}
