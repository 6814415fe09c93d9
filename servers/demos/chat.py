"""Chat: ``WS /chat?user=U`` — rooms, room messages, direct messages and presence.

The rules live in the sans-I/O :class:`feed.rooms.ChatRooms` (one per app); this module only moves
frames. Each connection has a bounded outbound queue drained by its own writer task, so one slow
reader never blocks a room. Because the model runs on the one event loop and queues are FIFO,
every connection receives a room's frames in ``seq`` order.

A connection is *dropped* from the rooms the moment it must go — its queue overflowed (1013), it
sent too much garbage (1008), a send stalled past ``send_timeout_s``, or the client left — so the
others see ``presence leave`` at once; the close frame follows as soon as the socket takes it
(bounded by ``send_timeout_s``: a peer that stopped reading cannot hold anything else up).

Identity: :func:`identify` is the only place that decides who a connection is: the verified
token's subject when auth is on (a ``?user=`` naming someone else is refused with 403
``user_mismatch``), else ``?user=``.

Bad frames (not JSON, schema violations, binary) get an ``error`` frame and count towards
``ws_max_bad_messages``, which closes with 1008; refusals of well-formed requests (``not_member``,
``user_offline``, ...) get an ``error`` frame and do not count. A bad ``?user=`` refuses the upgrade
with HTTP 400.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from feed.chat_messages import ChatInputError, check_name, parse_client_message
from feed.codec import dumps
from feed.exceptions import Refused
from feed.rooms import ChatRooms, ConnId, Delivery
from feed.settings import Settings
from feed.wire.contract import CLOSE_POLICY, CLOSE_TRY_AGAIN
from servers.policy import identity
from servers.state import state
from servers.websocket.endpoint import deny, json_subprotocol

router = APIRouter()


@dataclass(slots=True)
class Peer:
    """One open chat connection as the hub sees it."""

    queue: asyncio.Queue[str]
    close: tuple[int, str] | None = None  # set when dropped with a close code to send
    dropped: asyncio.Event = field(default_factory=asyncio.Event)


class ChatHub:
    """The app's rooms plus the outbound queue of every open chat connection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rooms = ChatRooms(settings.chat_max_rooms)
        self.peers: dict[ConnId, Peer] = {}

    def dispatch(self, deliveries: list[Delivery]) -> None:
        """Queue each frame for its connections; encode once per frame, whatever the fan-out."""
        for delivery in deliveries:
            text = dumps(delivery.message).decode()
            for conn in delivery.to:
                peer = self.peers.get(conn)
                if peer is None:
                    continue
                try:
                    peer.queue.put_nowait(text)
                except asyncio.QueueFull:
                    self.drop(conn, (CLOSE_TRY_AGAIN, "slow consumer"))

    def drop(self, conn: ConnId, close: tuple[int, str] | None = None) -> None:
        """Take ``conn`` out of every room now; its handler then closes it with ``close``."""
        peer = self.peers.pop(conn, None)
        if peer is None:
            return
        peer.close = close
        peer.dropped.set()
        self.dispatch(self.rooms.disconnect(conn))


def hub(websocket: WebSocket) -> ChatHub:
    """The app's :class:`ChatHub`, created on first use (the loop is single-threaded)."""
    found: ChatHub | None = getattr(websocket.app.state, "pushlab_chat", None)
    if found is None:
        found = ChatHub(state(websocket).settings)
        websocket.app.state.pushlab_chat = found
    return found


def identify(websocket: WebSocket) -> str:
    """Who this connection is: the token's subject with auth on, else ``?user=``."""
    asked = websocket.query_params.get("user")
    return identity(websocket, asked) or check_name(asked or "", "user")


@router.websocket("/chat")
async def ws_chat(websocket: WebSocket) -> None:
    """Register the connection with the rooms, then read client frames until it ends."""
    try:
        user = identify(websocket)
    except ChatInputError as exc:
        await deny(websocket, exc, transport="chat")
        return
    except Refused as exc:
        await deny(websocket, exc, transport="chat")
        return
    chat = hub(websocket)
    timeout_s = chat.settings.send_timeout_s
    await websocket.accept(subprotocol=json_subprotocol(websocket))
    peer = Peer(asyncio.Queue(chat.settings.subscriber_buffer))
    conn, welcome = chat.rooms.connect(user)
    chat.peers[conn] = peer
    writer = asyncio.ensure_future(_write(websocket, peer.queue, timeout_s))
    try:
        chat.dispatch(welcome)
        await _read(websocket, chat, conn, peer, writer)
    finally:
        chat.drop(conn)  # no-op when already dropped
        writer.cancel()
        if peer.close is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout_s):
                    await websocket.close(*peer.close)


async def _read(
    websocket: WebSocket, chat: ChatHub, conn: ConnId, peer: Peer, writer: asyncio.Future[None]
) -> None:
    """Handle client frames until the client leaves, the writer fails or the hub drops us."""
    bad = 0
    settings = chat.settings
    dropped = asyncio.ensure_future(peer.dropped.wait())
    receive = asyncio.ensure_future(websocket.receive())
    try:
        while True:
            await asyncio.wait((receive, writer, dropped), return_when=asyncio.FIRST_COMPLETED)
            if writer.done() or dropped.done():
                return
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                return
            receive = asyncio.ensure_future(websocket.receive())
            try:
                raw = message.get("text")
                if raw is None:
                    raise ChatInputError("unsupported", "binary frames are not accepted")
                parsed = parse_client_message(raw, settings.chat_max_text)
            except ChatInputError as exc:
                bad += 1
                if bad >= settings.ws_max_bad_messages:
                    chat.drop(conn, (CLOSE_POLICY, "too many bad messages"))
                    return
                chat.dispatch([_error(conn, exc)])
                continue
            try:
                chat.dispatch(chat.rooms.handle(conn, parsed))
            except ChatInputError as exc:
                chat.dispatch([_error(conn, exc)])
    except WebSocketDisconnect:
        return
    finally:
        receive.cancel()
        dropped.cancel()


def _error(conn: ConnId, exc: ChatInputError) -> Delivery:
    frame = {"type": "error", "error": exc.code, "detail": exc.detail, "id": exc.client_id}
    return Delivery((conn,), frame)


async def _write(websocket: WebSocket, queue: asyncio.Queue[str], timeout_s: float) -> None:
    """Send queued frames in order; returns when a send fails or stalls past ``timeout_s``."""
    # TimeoutError is an OSError: a peer that stopped reading ends the writer like a dead socket.
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        while True:
            text = await queue.get()
            async with asyncio.timeout(timeout_s):
                await websocket.send_text(text)
