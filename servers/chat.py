"""Chat: ``WS /chat?user=U`` — rooms, room messages, direct messages and presence.

The rules live in the sans-I/O :class:`feed.rooms.ChatRooms` (one per app); this module only moves
frames. Each connection has a bounded outbound queue drained by its own writer task, so one slow
reader never blocks a room: a connection whose queue is full is closed with 1013 (like the feed).
Because the model runs on the one event loop and queues are FIFO, every connection receives a
room's frames in ``seq`` order.

Identity seam: :func:`identify` is the only place that decides who a connection is. For now it
reads ``?user=``; authentication replaces it with the verified token's subject.

Bad frames (not JSON, schema violations, binary) get an ``error`` frame and count towards
``ws_max_bad_messages``, which closes with 1008; refusals of well-formed requests (``not_member``,
``user_offline``, ...) get an ``error`` frame and do not count. A bad ``?user=`` refuses the upgrade
with HTTP 400.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from feed.chat_messages import ChatInputError, check_name, parse_client_message
from feed.codec import dumps
from feed.rooms import ChatRooms, ConnId, Delivery
from feed.settings import Settings
from servers.deps import JSON, error_body, state

router = APIRouter()

CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
_CLOSE = object()  # queue sentinel: the writer closes the socket with the code that follows


class ChatHub:
    """The app's rooms plus the outbound queue of every open chat connection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rooms = ChatRooms(settings.chat_max_rooms)
        self.queues: dict[ConnId, asyncio.Queue[Any]] = {}

    def dispatch(self, deliveries: list[Delivery]) -> None:
        """Queue each frame for its connections; encode once per frame, whatever the fan-out."""
        for delivery in deliveries:
            text = dumps(delivery.message).decode()
            for conn in delivery.to:
                queue = self.queues.get(conn)
                if queue is None:
                    continue
                try:
                    queue.put_nowait(text)
                except asyncio.QueueFull:
                    self._overflow(conn, queue)

    def _overflow(self, conn: ConnId, queue: asyncio.Queue[Any]) -> None:
        close_soon(queue, CLOSE_TRY_AGAIN, "slow consumer")


def close_soon(queue: asyncio.Queue[Any], code: int | None, reason: str) -> None:
    """Queue a close instruction for the writer, dropping queued frames if the queue is full."""
    if queue.full():
        # The dropped frames are moot: the connection closes right after.
        while not queue.empty():
            queue.get_nowait()
    queue.put_nowait((_CLOSE, code, reason))


def hub(websocket: WebSocket) -> ChatHub:
    """The app's :class:`ChatHub`, created on first use (the loop is single-threaded)."""
    found: ChatHub | None = getattr(websocket.app.state, "pushlab_chat", None)
    if found is None:
        found = ChatHub(state(websocket).settings)
        websocket.app.state.pushlab_chat = found
    return found


async def identify(websocket: WebSocket) -> str:
    """Who this connection is: ``?user=`` for now (the authentication seam)."""
    return check_name(websocket.query_params.get("user", ""), "user")


@router.websocket("/chat")
async def ws_chat(websocket: WebSocket) -> None:
    """Register the connection with the rooms, then read client frames until it ends."""
    try:
        user = await identify(websocket)
    except ChatInputError as exc:
        await websocket.send_denial_response(JSON(error_body(exc.code, exc.detail), 400))
        return
    chat = hub(websocket)
    await websocket.accept()
    queue: asyncio.Queue[Any] = asyncio.Queue(chat.settings.subscriber_buffer)
    conn, welcome = chat.rooms.connect(user)
    chat.queues[conn] = queue
    writer = asyncio.ensure_future(_write(websocket, queue, chat.settings.send_timeout_s))
    closing = False
    try:
        chat.dispatch(welcome)
        closing = await _read(websocket, chat, conn, queue, writer)
    finally:
        del chat.queues[conn]
        chat.dispatch(chat.rooms.disconnect(conn))
        if not writer.done():
            if not closing:
                close_soon(queue, None, "")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, chat.settings.send_timeout_s)
        writer.cancel()


async def _read(
    websocket: WebSocket,
    chat: ChatHub,
    conn: ConnId,
    queue: asyncio.Queue[Any],
    writer: asyncio.Future[None],
) -> bool:
    """Handle client frames; True when it queued a close (1008) for the writer."""
    bad = 0
    settings = chat.settings
    receive = asyncio.ensure_future(websocket.receive())
    try:
        while True:
            await asyncio.wait((receive, writer), return_when=asyncio.FIRST_COMPLETED)
            if writer.done():  # closed for overflow or a send failed
                return False
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                return False
            receive = asyncio.ensure_future(websocket.receive())
            try:
                raw = message.get("text")
                if raw is None:
                    raise ChatInputError("unsupported", "binary frames are not accepted")
                parsed = parse_client_message(raw, settings.chat_max_text)
            except ChatInputError as exc:
                bad += 1
                if bad >= settings.ws_max_bad_messages:
                    close_soon(queue, CLOSE_POLICY, "too many bad messages")
                    return True
                chat.dispatch([_error(conn, exc)])
                continue
            try:
                chat.dispatch(chat.rooms.handle(conn, parsed))
            except ChatInputError as exc:
                chat.dispatch([_error(conn, exc)])
    except WebSocketDisconnect:
        return False
    finally:
        receive.cancel()


def _error(conn: ConnId, exc: ChatInputError) -> Delivery:
    frame = {"type": "error", "error": exc.code, "detail": exc.detail, "id": exc.client_id}
    return Delivery((conn,), frame)


async def _write(websocket: WebSocket, queue: asyncio.Queue[Any], timeout_s: float) -> None:
    """Send queued frames in order; a close instruction ends the connection."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        while True:
            item = await queue.get()
            if isinstance(item, tuple):
                _, code, reason = item
                if code is not None:
                    await websocket.close(code, reason)
                return
            async with asyncio.timeout(timeout_s):
                await websocket.send_text(item)
