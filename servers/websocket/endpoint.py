"""WebSocket: ``WS /ws?topic=T&since=N[&format=msgpack]`` pushes one frame per event.

Frames from the server: events (no ``type`` key; JSON text, or MessagePack binary frames with
``format=msgpack`` / subprotocol ``pushlab.msgpack.v1``), then control messages ``{"type": ...}``,
always JSON text: ``ready`` (first frame, with the resume ``cursor``), ``gap`` (recovered=false),
``ping`` (heartbeat: answer ``pong`` with the same id), ``pong``, ``published``,
``authenticated`` and ``error``. Client frames are in :mod:`feed.messages`.

Everything that can be refused is refused before the upgrade with an HTTP answer (401 bad token
and 403 origin by :mod:`servers.policy`; here 400 bad query, 429 per-IP cap, 503 topic limit or
draining). Only first-message
authentication happens after it: the socket must send ``{"type": "auth", "token": ...}`` within
``auth_first_message_s`` or is closed with 1008. Close codes are listed in docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket
from starlette.datastructures import QueryParams
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from feed.codec import control, parse_cursor
from feed.events import check_topic
from feed.exceptions import BadInput, CapacityError, Refused, TooManyConnections, Unauthorized
from feed.messages import Auth, MessageError, parse_message
from feed.wire.contract import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    PATHS,
    SUBPROTOCOL_JSON,
    SUBPROTOCOL_MSGPACK,
    SUBPROTOCOLS,
)
from servers.admission import check_open
from servers.auth import Principal, subprotocol_token, verify
from servers.connections import Conn
from servers.logs import log_conn
from servers.policy import principal_of
from servers.state import JSON, AppState, error_body, state, status_for
from servers.websocket.session import Session, close

TRANSPORT = "ws"
PATH = PATHS[TRANSPORT]
FORMATS = ("json", "msgpack")


class BadHandshake(BadInput):
    """A query or subprotocol combination the endpoint cannot serve."""

    code = "bad_request"


@dataclass(frozen=True, slots=True)
class Handshake:
    """What the upgrade request asked for, validated."""

    topic: str
    since: int | None
    binary: bool
    subprotocol: str | None


def parse_handshake(ws: WebSocket) -> Handshake:
    """Validate query and subprotocols; raises :class:`BadInput`."""
    # Parsed here, not through ws.query_params, which would cache the parse on the socket's
    # WebSocket object for its whole life.
    params = QueryParams(ws.scope["query_string"])
    topic = check_topic(params.get("topic", ""))
    since = parse_cursor(params.get("since"))
    offered: list[str] = list(ws.scope.get("subprotocols", []))
    fmt = params.get("format", "json")
    if fmt not in FORMATS:
        raise BadHandshake(f"format must be one of {FORMATS}")
    subprotocol = next((p for p in offered if p in SUBPROTOCOLS), None)
    if subprotocol_token(offered) is not None and subprotocol is None:
        # The server must echo one offered subprotocol (browsers fail the connection otherwise)
        # and must never echo the token: a bearer subprotocol needs a pushlab one beside it.
        raise BadHandshake(f"offer {SUBPROTOCOL_JSON!r} alongside the bearer subprotocol")
    binary = fmt == "msgpack" or subprotocol == SUBPROTOCOL_MSGPACK
    return Handshake(topic, since, binary, subprotocol)


async def ws_feed(websocket: WebSocket) -> None:
    """Admit, subscribe and serve one feed socket."""
    st = state(websocket)
    client = (websocket.client.host, websocket.client.port) if websocket.client else None
    try:
        check_open(st)
        hs = parse_handshake(websocket)
        principal = principal_of(websocket)  # Origin and token: servers.policy, before dispatch
        st.conns.check_ip(client[0] if client else "unknown", TRANSPORT)
    except (BadInput, Refused, CapacityError) as exc:
        await deny(websocket, exc, client)
        return
    with st.conns.open(TRANSPORT, client) as conn:
        await _serve(websocket, st, conn, hs, principal)


class _Endpoint:
    """``WS /ws``: :func:`ws_feed` as a bare ASGI app.

    A plain ASGI app, not FastAPI's ``@router.websocket``: the endpoint takes no injected
    dependencies, and FastAPI's dependency machinery kept AsyncExitStacks and their frames alive
    per open socket (~3 KiB, tracemalloc over 1,000 idle sockets; see docs/performance.md).
    :mod:`servers.routes` routes it and has PushlabApp serve it before the middleware stack.
    """

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]:
        # Not a coroutine of its own: the caller awaits ws_feed's directly, so an open socket
        # keeps one frame fewer suspended (~0.25 KiB, experiments/idle_memory.py).
        return ws_feed(WebSocket(scope, receive, send))


endpoint = _Endpoint()


async def _serve(
    ws: WebSocket, st: AppState, conn: Conn, hs: Handshake, principal: Principal | None
) -> None:
    accepted = False
    if st.settings.auth and principal is None:
        await ws.accept(subprotocol=hs.subprotocol)
        accepted = True
        principal = await first_message_auth(ws, st, conn)
        if principal is None:
            return
    conn.user = principal.user if principal else None
    try:
        async with st.broker.subscribe(hs.topic, hs.since, st.settings.subscriber_buffer) as sub:
            if not accepted:
                await ws.accept(subprotocol=hs.subprotocol)
            forget_request_headers(ws)
            await Session(ws, st, sub, conn, hs.binary, principal).run()
    except CapacityError as exc:
        if accepted:
            await close(ws, conn, CLOSE_TRY_AGAIN, str(exc)[:120])
        else:
            conn.closing(503, "capacity")
            await deny(ws, exc)


def forget_request_headers(ws: WebSocket) -> None:
    """Drop the upgrade's headers from the scope once the socket is accepted: everything that
    reads them (policy, parse_handshake, the subprotocol) has run, and otherwise the scope keeps
    a list of byte-string pairs alive per open socket (~0.8 KiB, experiments/idle_memory.py)."""
    ws.scope["headers"] = []


async def first_message_auth(ws: WebSocket, st: AppState, conn: Conn) -> Principal | None:
    """Wait for ``{"type": "auth", "token": ...}``; close 1008 on anything else or on timeout."""
    receive = asyncio.ensure_future(ws.receive())
    draining = asyncio.ensure_future(st.shutdown.wait())
    try:
        await asyncio.wait(
            (receive, draining),
            timeout=st.settings.auth_first_message_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        draining.cancel()
        if not receive.done():
            receive.cancel()
    if not receive.done() or receive.cancelled():
        if st.shutdown.is_set():
            await close(ws, conn, CLOSE_GOING_AWAY, "shutdown")
        else:
            await close(ws, conn, CLOSE_POLICY, "auth timeout")
        return None
    try:
        message = receive.result()
    except WebSocketDisconnect:
        return None
    if message["type"] == "websocket.disconnect":
        conn.closing(int(message.get("code", 1005)), "client")
        return None
    try:
        msg = parse_message(message.get("text") or b"")
        if not isinstance(msg, Auth):
            raise Unauthorized("first message must be {'type': 'auth', 'token': ...}")
        principal = verify(st.settings, msg.token)
    except (MessageError, Unauthorized) as exc:
        st.metrics.rejected.labels(TRANSPORT, "1008").inc()
        await close(ws, conn, CLOSE_POLICY, f"unauthorized: {exc}"[:120])
        return None
    reply = control("authenticated", user=principal.user, exp=principal.exp)
    await ws.send_text(reply.decode())
    return principal


def json_subprotocol(ws: WebSocket) -> str | None:
    """``pushlab.v1`` when offered (a browser sending ``bearer.<token>`` offers it beside it): the
    demo sockets echo it, or the browser fails the connection."""
    return SUBPROTOCOL_JSON if SUBPROTOCOL_JSON in ws.scope.get("subprotocols", []) else None


async def deny(
    ws: WebSocket,
    exc: Exception,
    client: tuple[str, int] | None = None,
    transport: str = TRANSPORT,
) -> None:
    """Refuse the upgrade with an HTTP error and a JSON body (never a 101), logged at INFO with
    its reason: a refusal is the server working as documented, not an error."""
    code = getattr(exc, "code", "unavailable")
    status = status_for(exc)
    state(ws).metrics.rejected.labels(transport, str(status)).inc()
    if client is None and ws.client is not None:
        client = (ws.client.host, ws.client.port)
    if not isinstance(exc, TooManyConnections):  # the cap logged that one (connections.py)
        log_conn(
            "reject",
            logging.INFO,
            transport=transport,
            remote=f"{client[0]}:{client[1]}" if client else "unknown",
            status=status,
            error=code,
            detail=str(exc),
        )
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    await ws.send_denial_response(
        JSON(error_body(code, str(exc)), status_code=status, headers=headers)
    )
