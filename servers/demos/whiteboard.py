"""The collaborative whiteboard over WebSocket, or over SSE downstream + POST upstream.

``WS /whiteboard/ws?board=B&user=U&since=N``: the socket first gets either the operations after
N (a reconnect whose cursor is still retained) or a ``snapshot`` of the board, then ``ready``;
from then on every operation anyone applies (``stroke``/``undo``/``clear``, each with the board's
next ``seq``), ``cursor`` moves of the others and ``presence`` changes. The sender receives its own
operations back with their seq: that is its acknowledgement.

``GET /whiteboard/sse?board=B&user=U&since=N`` streams the same frames as SSE ``data:`` lines
(sequenced ones with ``id: seq``, so EventSource resumes by ``Last-Event-ID``) and
``POST /whiteboard/send?board=B&user=U`` carries what the socket would have sent upstream.

Limits, per connection (WS) or per board+user (POST): frames over ``board_max_message_bytes``
(WS close 1009 / HTTP 413), a token bucket of ``board_rate``/s with bursts of ``board_burst``
(error frame ``rate_limited`` / HTTP 429), invalid frames answered with an ``error`` frame (HTTP
400/409) and the ``ws_max_bad_messages``-th bad frame closes the socket with 1008. Boards live in
this process's memory: one server, not a cluster. See docs/demos.md, "Whiteboard".
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Header, Request, WebSocket
from sse_starlette import EventSourceResponse
from starlette.websockets import WebSocketDisconnect

from feed.board import Board, BoardError, Boards, check_name, parse_message
from feed.codec import control, dumps, parse_cursor
from feed.exceptions import BadInput, CapacityError, Refused
from feed.ratelimit import TokenBucket
from feed.settings import Settings
from feed.wire.contract import CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_TRY_AGAIN
from feed.wire.sse import event_block, named_block, retry_block
from servers.policy import identity
from servers.state import JSON, error_body, read_limited, state
from servers.websocket.endpoint import deny, json_subprotocol

router = APIRouter()

CONFLICTS = {"nothing_to_undo", "duplicate_stroke", "board_full"}
_SEQUENCED = ("stroke", "undo", "clear", "snapshot")


class Outbox:
    """One connection's bounded queue of frames; overflowing it closes the connection (1013)."""

    def __init__(self, user: str, maxsize: int) -> None:
        self.user = user
        self.maxsize = maxsize
        self.overflowed = False
        self._frames: deque[tuple[int | None, str]] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, frame: dict[str, Any]) -> None:
        """Queue a frame; never blocks the sender."""
        if len(self._frames) >= self.maxsize:
            self.overflowed = True
        else:
            # Operations and snapshots move the resume point: over SSE they carry ``id:``.
            seq = frame.get("seq") if frame["type"] in _SEQUENCED else None
            self._frames.append((seq, dumps(frame).decode()))
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> tuple[int | None, str] | None:
        """The next ``(seq, frame)``, or None once overflowed."""
        while not self._frames and not self.overflowed:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return None if self.overflowed else self._frames.popleft()


class Hub:
    """Every board of this server and the connections watching each."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.boards = Boards(
            settings.board_max_boards,
            max_strokes=settings.board_max_strokes,
            max_points=settings.board_max_points,
            history=settings.board_history,
        )
        self._peers: dict[str, set[Outbox]] = {}
        self._post_buckets: dict[tuple[str, str], TokenBucket] = {}

    def join(self, board: Board, user: str, since: int | None) -> Outbox:
        """Register a connection and queue its catch-up; synchronous, so nothing slips between."""
        out = Outbox(user, self.settings.board_buffer)
        ops = board.replay(since) if since is not None else None
        for frame in ops if ops is not None else [board.snapshot()]:
            out.put(frame)
        arrived = board.join(user)
        out.put({"type": "ready", "board": board.name, "seq": board.seq, "users": board.users()})
        self._peers.setdefault(board.name, set()).add(out)
        if arrived:
            self.broadcast(board, board.presence(), exclude=out)
        return out

    def leave(self, board: Board, out: Outbox) -> None:
        """Forget a connection; tell the others when its user is gone."""
        self._peers.get(board.name, set()).discard(out)
        if board.leave(out.user):
            self.broadcast(board, board.presence())

    def broadcast(self, board: Board, frame: dict[str, Any], exclude: Outbox | None = None) -> None:
        """Queue ``frame`` for every connection on ``board`` (but ``exclude``)."""
        for out in self._peers.get(board.name, ()):
            if out is not exclude:
                out.put(frame)

    def handle(self, board: Board, user: str, raw: str | bytes, sender: Outbox | None) -> int:
        """Validate and apply one client frame, broadcast the result; returns the new seq."""
        msg = parse_message(raw)
        frame = board.apply(user, msg)
        # Cursor moves go to the others only; operations come back to the sender as its ack.
        self.broadcast(board, frame, exclude=sender if frame["type"] == "cursor" else None)
        return board.seq

    def post_bucket(self, board: str, user: str) -> TokenBucket:
        """The rate limit of POST senders, per board and user (no connection to hang it on)."""
        key = (board, user)
        bucket = self._post_buckets.get(key)
        if bucket is None:
            if len(self._post_buckets) >= 10_000:
                self._post_buckets.clear()  # bounded memory; a reset only forgives a little
            bucket = self._post_buckets[key] = self._new_bucket()
        return bucket

    def _new_bucket(self) -> TokenBucket:
        cfg = self.settings
        return TokenBucket(cfg.board_rate, cfg.board_burst, time.monotonic())


def hub_of(conn: Request | WebSocket) -> Hub:
    """The app's :class:`Hub` (built in the lifespan)."""
    hub: Hub = conn.app.state.whiteboard
    return hub


def _target(
    hub: Hub, conn: Request | WebSocket, last_event_id: str | None = None
) -> tuple[Board, str, int | None]:
    params = conn.query_params
    name = check_name(params.get("board", ""), "board")
    # With auth on, the user is the token's subject (servers.policy); else ?user=.
    asked = params.get("user")
    user = identity(conn, asked) or check_name(asked or "", "user")
    since = parse_cursor(last_event_id, name="Last-Event-ID") if last_event_id else None
    if since is None:
        since = parse_cursor(params.get("since"))
    return hub.boards.get(name), user, since


@router.websocket("/whiteboard/ws")
async def board_ws(websocket: WebSocket) -> None:
    """Draw together over one WebSocket."""
    hub = hub_of(websocket)
    try:
        board, user, since = _target(hub, websocket)
    except (BadInput, CapacityError, Refused) as exc:
        await deny(websocket, exc, transport="whiteboard")
        return
    await websocket.accept(subprotocol=json_subprotocol(websocket))
    out = hub.join(board, user, since)
    writer = asyncio.ensure_future(_write(websocket, out, state(websocket).settings))
    try:
        await _read(websocket, hub, board, out, writer)
    finally:
        writer.cancel()
        hub.leave(board, out)


async def _write(websocket: WebSocket, out: Outbox, cfg: Settings) -> None:
    while (item := await out.get()) is not None:
        async with asyncio.timeout(cfg.send_timeout_s):
            await websocket.send_text(item[1])
    await websocket.close(CLOSE_TRY_AGAIN, "slow consumer")


async def _read(
    websocket: WebSocket, hub: Hub, board: Board, out: Outbox, writer: asyncio.Future[None]
) -> None:
    cfg = hub.settings
    bucket = hub._new_bucket()
    bad = 0
    receive = asyncio.ensure_future(websocket.receive())
    try:
        while True:
            await asyncio.wait((receive, writer), return_when=asyncio.FIRST_COMPLETED)
            if writer.done():
                return
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                return
            receive = asyncio.ensure_future(websocket.receive())
            raw = message.get("text") or message.get("bytes") or b""
            if len(raw) > cfg.board_max_message_bytes:
                await websocket.close(CLOSE_TOO_BIG, "frame too big")
                return
            try:
                if not bucket.allow(time.monotonic()):
                    raise BoardError("rate_limited", f"at most {cfg.board_rate:g} frames/s")
                hub.handle(board, out.user, raw, out)
            except BoardError as exc:
                bad += 1
                if bad >= cfg.ws_max_bad_messages:
                    await websocket.close(CLOSE_POLICY, "too many bad frames")
                    return
                out.put({"type": "error", "error": exc.code, "detail": exc.detail})
    except WebSocketDisconnect:
        return
    finally:
        receive.cancel()


@router.get("/whiteboard/sse")
async def board_sse(
    request: Request, last_event_id: str | None = Header(default=None)
) -> EventSourceResponse:
    """The downstream half of the SSE + POST whiteboard."""
    hub = hub_of(request)
    board, user, since = _target(hub, request, last_event_id)
    cfg = state(request).settings
    return EventSourceResponse(
        _sse_stream(hub, board, user, since, cfg.sse_retry_ms),
        ping=cfg.keepalive_s,
        send_timeout=cfg.send_timeout_s,
    )


async def _sse_stream(
    hub: Hub, board: Board, user: str, since: int | None, retry_ms: int
) -> AsyncIterator[bytes]:
    out = hub.join(board, user, since)
    try:
        yield retry_block(retry_ms)
        while (item := await out.get()) is not None:
            seq, text = item
            yield event_block(seq, text.encode())
        yield named_block("end", control("end", reason="overflow"))
    finally:
        hub.leave(board, out)


@router.post("/whiteboard/send")
async def board_send(request: Request) -> JSON:
    """The upstream half: one client frame per request; ``{"seq": n}`` on success."""
    hub = hub_of(request)
    cfg = hub.settings
    board, user, _ = _target(hub, request)
    bucket = hub.post_bucket(board.name, user)
    if not bucket.allow(time.monotonic()):
        headers = {"Retry-After": str(max(1, round(bucket.retry_after())))}
        body = error_body("rate_limited", f"at most {cfg.board_rate:g} requests/s")
        return JSON(body, status_code=429, headers=headers)
    raw = await read_limited(request, cfg.board_max_message_bytes)
    try:
        seq = hub.handle(board, user, raw, None)
    except BoardError as exc:
        status = 409 if exc.code in CONFLICTS else 400
        return JSON(error_body(exc.code, exc.detail), status_code=status)
    return JSON({"seq": seq})
