"""One accepted feed WebSocket: the writer loop, the reader (client frames) and the heartbeat.

Three tasks share the socket: events go out in batches; client frames are rate-limited,
validated (:mod:`feed.messages`) and answered; the heartbeat sends ``{"type": "ping", "id": n}``
every ``ws_ping_interval_s`` and closes with 1011 when the matching ``pong`` does not come within
``ws_ping_timeout_s`` — so a silent peer (half-open TCP, a client that stopped reading) is gone
within interval + timeout and its subscription freed. The first of the three to finish ends the
session. uvicorn's own protocol-level pings stay off: its timeout closes the transport without
telling the app, and the app needs the round trip anyway (``pushlab_ping_rtt_seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from operator import attrgetter
from typing import Any

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from feed.broker import KICKED, OVERFLOW, SHUTDOWN, Subscription
from feed.codec import control, dumps, msgpack_frame
from feed.exceptions import SubscriptionClosed, Unauthorized
from feed.messages import Auth, MessageError, Ping, Pong, Publish, parse_message
from feed.ratelimit import TokenBucket
from servers.auth import Principal, verify
from servers.connections import Conn
from servers.deps import AppState
from servers.logs import log_conn
from servers.rawsend import RAW_SEND
from servers.ws_direct import direct_sink

CLOSE_GOING_AWAY = 1001
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_RESTART = 1012
CLOSE_TRY_AGAIN = 1013
CLOSE_RATE_LIMITED = 4029
TOKEN_EXPIRED = "token_expired"
CLOSE_FOR_REASON = {
    SHUTDOWN: CLOSE_GOING_AWAY,
    KICKED: CLOSE_RESTART,
    OVERFLOW: CLOSE_TRY_AGAIN,
    TOKEN_EXPIRED: CLOSE_POLICY,
}
# A close that the peer never acknowledges (it stopped reading) must not hold the handler.
CLOSE_WAIT_S = 1.0
# For a peer known to be dead, the close frame is a courtesy: the subscription (released when the
# handler returns) must not wait behind a write buffer that will never drain.
DEAD_PEER_CLOSE_WAIT_S = 0.05


_JSON = attrgetter("json")
_PACKED = attrgetter("packed")


class SessionEnd(Exception):
    """Ends the session with a close code and reason."""

    def __init__(self, code: int, reason: str, dead_peer: bool = False) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.dead_peer = dead_peer


async def close(
    ws: WebSocket, conn: Conn, code: int, reason: str, wait_s: float = CLOSE_WAIT_S
) -> None:
    """Send a close frame (bounded wait) and record it on ``conn``."""
    conn.closing(code, reason)
    with contextlib.suppress(Exception):
        async with asyncio.timeout(wait_s):
            await ws.close(code, reason)


class Session:
    """The running state of one feed socket."""

    def __init__(
        self,
        ws: WebSocket,
        st: AppState,
        sub: Subscription,
        conn: Conn,
        binary: bool,
        principal: Principal | None,
    ) -> None:
        self.ws, self.st, self.sub, self.conn = ws, st, sub, conn
        self.binary = binary
        self.principal = principal
        self.cfg = st.settings
        self.pong = asyncio.Event()
        self.ping_id = 0
        self.ping_sent = 0.0
        self.expiry: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        """Serve until a task ends; the close code is recorded on ``conn``."""
        self._arm_expiry()
        tasks = [asyncio.ensure_future(self._write()), asyncio.ensure_future(self._read())]
        if self.cfg.ws_ping_interval_s > 0:
            tasks.append(asyncio.ensure_future(self._heartbeat()))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if isinstance(exc, SessionEnd):
                    wait = DEAD_PEER_CLOSE_WAIT_S if exc.dead_peer else CLOSE_WAIT_S
                    await close(self.ws, self.conn, exc.code, exc.reason, wait)
                elif isinstance(exc, TimeoutError):
                    self.st.metrics.errors.labels("ws", "send_timeout").inc()
                    await close(
                        self.ws, self.conn, CLOSE_INTERNAL, "send timeout", DEAD_PEER_CLOSE_WAIT_S
                    )
                elif exc is not None and not isinstance(exc, WebSocketDisconnect):
                    self.st.metrics.errors.labels("ws", type(exc).__name__).inc()
                    log_conn("error", logging.ERROR, conn_id=self.conn.id, error=repr(exc))
                    await close(self.ws, self.conn, CLOSE_INTERNAL, "server error")
        finally:
            self.sub.attach(None)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.expiry is not None:
                self.expiry.cancel()

    def _arm_expiry(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        if self.principal is not None:
            self.expiry = asyncio.get_running_loop().call_later(
                max(0.0, self.principal.remaining()), self.sub.close, TOKEN_EXPIRED
            )

    async def _write(self) -> None:
        ws, sub, conn = self.ws, self.sub, self.conn
        if sub.gap:
            await ws.send_text(dumps(sub.gap.as_dict()).decode())
        await ws.send_text(control("ready", topic=sub.topic, cursor=sub.cursor).decode())
        # Events go straight to the server's ASGI send (stashed by RawSend): Starlette's
        # WebSocket.send and two exception-handler wrappers cost a few us per frame, and after
        # accept they only re-check a state that cannot change while this task sends.
        send = ws.scope.get(RAW_SEND) or ws.send
        watchdog, binary = self.st.watchdog, self.binary
        if self.cfg.ws_direct:
            # While this task is parked with nothing buffered, the publisher writes events
            # itself (servers/ws_direct.py); a declined event lands in the buffer and wakes us.
            sub.attach(direct_sink(send, conn, binary))
        try:
            while True:
                batch = await sub.next_batch()
                with watchdog:
                    if binary:
                        for event in batch:
                            await send({"type": "websocket.send", "bytes": msgpack_frame(event)})
                    else:
                        for event in batch:
                            await send({"type": "websocket.send", "text": event.text})
                # Summed in C after the loop: a Python-level add per event cost ~0.4 us/event
                # (experiments/ws_hotpath.py), more than the rest of the accounting together.
                size = sum(map(len, map(_PACKED if binary else _JSON, batch)))
                # Counted per batch, not per event: the hot path stays two increments.
                conn.events += len(batch)
                conn.bytes += size
        except SubscriptionClosed as closed:
            code = CLOSE_FOR_REASON.get(closed.reason, CLOSE_RESTART)
            raise SessionEnd(code, closed.reason) from None
        except TimeoutError:
            raise  # the watchdog's (an OSError subclass): handled by run() as a send timeout
        except OSError:
            # What Starlette's WebSocket.send does with uvicorn's ClientDisconnected.
            ws.application_state = WebSocketState.DISCONNECTED
            raise WebSocketDisconnect(1006) from None

    async def _heartbeat(self) -> None:
        interval, timeout = self.cfg.ws_ping_interval_s, self.cfg.ws_ping_timeout_s
        while True:
            await asyncio.sleep(interval)
            self.ping_id += 1
            self.pong.clear()
            self.ping_sent = time.monotonic()
            try:
                # The ping's own send counts against the timeout: a peer that stopped reading
                # has a full buffer and blocks it.
                async with asyncio.timeout(timeout):
                    await self.ws.send_text(control("ping", id=self.ping_id).decode())
                    await self.pong.wait()
            except TimeoutError:
                self.st.metrics.errors.labels("ws", "heartbeat_timeout").inc()
                raise SessionEnd(CLOSE_INTERNAL, "heartbeat timeout", dead_peer=True) from None

    async def _read(self) -> None:
        cfg = self.cfg
        bucket = TokenBucket(cfg.ws_rate_per_s, cfg.ws_rate_burst, time.monotonic())
        bad = dropped = 0
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                self.conn.closing(int(message.get("code", 1005)), "client")
                return
            if not bucket.allow(time.monotonic()):
                dropped += 1
                if dropped == 1:
                    await self._reply({"type": "error", "error": "rate_limited", "detail": None})
                if dropped >= cfg.ws_rate_burst:
                    self.st.metrics.errors.labels("ws", "rate_limited").inc()
                    raise SessionEnd(CLOSE_RATE_LIMITED, "rate limit exceeded")
                continue
            dropped = 0
            reply = await self._handle(message)
            if reply is None:
                continue
            if reply["type"] == "error":
                bad += 1
                self.st.metrics.errors.labels("ws", str(reply["error"])).inc()
                if bad >= cfg.ws_max_bad_messages:
                    raise SessionEnd(CLOSE_POLICY, "too many bad messages")
            await self._reply(reply)

    async def _reply(self, reply: dict[str, Any]) -> None:
        await self.ws.send_text(dumps(reply).decode())

    async def _handle(self, message: Any) -> dict[str, Any] | None:
        text = message.get("text")
        if text is None:
            return _error("unsupported", "binary frames are not accepted")
        try:
            msg = parse_message(text)
        except MessageError as exc:
            return _error(exc.code, exc.detail)
        if isinstance(msg, Pong):
            if msg.id == self.ping_id and not self.pong.is_set():
                self.st.metrics.ping_rtt.observe(time.monotonic() - self.ping_sent)
                self.pong.set()
            return None
        if isinstance(msg, Ping):
            return {"type": "pong", "id": msg.id}
        if isinstance(msg, Publish):
            event = await self.st.broker.publish(self.sub.topic, msg.data)
            return {"type": "published", "seq": event.seq, "id": msg.id}
        assert isinstance(msg, Auth)
        return self._refresh(msg.token)

    def _refresh(self, token: str) -> dict[str, Any]:
        """A new token mid-session extends it (auth on); a bad one is an error frame."""
        if not self.cfg.auth:
            return _error("invalid_message", "authentication is off")
        try:
            self.principal = verify(self.cfg, token)
        except Unauthorized as exc:
            return _error("unauthorized", str(exc))
        self._arm_expiry()
        return {"type": "authenticated", "user": self.principal.user, "exp": self.principal.exp}


def _error(code: str, detail: Any) -> dict[str, Any]:
    return {"type": "error", "error": code, "detail": detail}
