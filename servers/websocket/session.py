"""One accepted feed WebSocket: client frames, events and the heartbeat, on few tasks.

The endpoint's own task (uvicorn's, for the whole connection) reads client frames: they are
rate-limited, validated (:mod:`feed.messages`) and answered. Events reach the socket one of two
ways: written by the publisher itself while the socket is idle and clean
(:mod:`servers.fastpath.ws_direct`), or by a writer task that exists only while events are
buffered — or always, when the socket has no direct sink (``ws_direct`` off, permessage-deflate
agreed, a server whose protocol :mod:`servers.fastpath.ws_direct` does not know). The heartbeat
runs on the app's one timer (:mod:`servers.timers.heartbeat`): ``{"type": "ping", "id": n}`` every
``ws_ping_interval_s`` after the last pong, and close 1011 when the matching ``pong`` does not
come within ``ws_ping_timeout_s`` — so a silent peer (half-open TCP, a client that stopped
reading) is gone within interval + timeout and its subscription freed.

Whatever ends the session first (the client leaving or breaking a limit, the subscription
closing: overflow, kick, shutdown, token expiry; a stalled send, a missed pong) is recorded once,
the reading task is interrupted, and it sends the close. uvicorn's own protocol-level pings stay
off: its timeout closes the transport without telling the app, and the app needs the round trip
anyway (``pushlab_ping_rtt_seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from operator import attrgetter
from typing import Any

from fastapi import WebSocket
from starlette.types import Send
from starlette.websockets import WebSocketDisconnect, WebSocketState

from feed.broker import KICKED, OVERFLOW, SHUTDOWN, Subscription
from feed.codec import control, dumps, msgpack_frame
from feed.exceptions import SubscriptionClosed, Unauthorized
from feed.messages import Auth, MessageError, Ping, Pong, Publish, parse_message
from feed.ratelimit import TokenBucket
from feed.wire.contract import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_RATE_LIMITED,
    CLOSE_RESTART,
    CLOSE_TRY_AGAIN,
    TOKEN_EXPIRED,
)
from servers.auth import Principal, verify
from servers.connections import Conn
from servers.fastpath.rawsend import RAW_SEND, transport_of
from servers.fastpath.ws_direct import DirectSink, direct_sink
from servers.logs import log_conn
from servers.state import AppState
from servers.timers.heartbeat import Beat, Heartbeats
from servers.timers.release import release

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
# The session's end when nothing else ended it first (the endpoint task was cancelled).
_ENDED = WebSocketDisconnect(1006)


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

    # One per open socket (docs/performance.md, memory per idle connection).
    __slots__ = (
        "ws",
        "st",
        "sub",
        "conn",
        "binary",
        "principal",
        "cfg",
        "send",
        "sink",
        "task",
        "writer",
        "pinger",
        "end",
        "interruptible",
        "interrupted",
        "beat",
        "ping_id",
        "ping_sent",
        "expiry",
    )

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
        # Events go straight to the server's ASGI send (stashed by RawSend): Starlette's
        # WebSocket.send and two exception-handler wrappers cost a few us per frame, and after
        # accept they only re-check a state that cannot change while a writer sends.
        self.send: Send = ws.scope.get(RAW_SEND) or ws.send
        self.sink: DirectSink | None = None
        self.task: asyncio.Task[Any] | None = None
        self.writer: asyncio.Task[None] | None = None
        self.pinger: asyncio.Task[None] | None = None
        # What ended the session (first wins); None while it runs.
        self.end: BaseException | None = None
        # True while the endpoint task may be cancelled to stop it reading (see _stop).
        self.interruptible = False
        self.interrupted = False
        self.beat: Beat | None = None
        self.ping_id = 0
        self.ping_sent: float | None = None  # set while a ping waits for its pong
        self.expiry: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        """Serve until something ends the session; the close code is recorded on ``conn``."""
        task = self.task = asyncio.current_task()
        assert task is not None
        self._arm_expiry()
        self.interruptible = True
        try:
            try:
                await self._open()
                await self._read()
            except asyncio.CancelledError:
                # Ours (see _stop) is absorbed; anyone else's cancellation goes on.
                if not self.interrupted or task.uncancel() > 0:
                    raise
            except Exception as exc:
                self._stop(exc)
            finally:
                self.interruptible = False
            await self._close()
        finally:
            await self._release()

    def _stop(self, exc: BaseException) -> None:
        """Record what ends the session (first call wins) and stop the reading task."""
        if self.end is not None:
            return
        self.end = exc
        task = self.task
        if self.interruptible and task is not None and asyncio.current_task() is not task:
            self.interrupted = True
            task.cancel()

    async def _open(self) -> None:
        ws, sub, cfg = self.ws, self.sub, self.cfg
        if cfg.ws_ping_interval_s > 0:
            self.beat = self.st.heartbeats.add(self)
        if sub.gap:
            await ws.send_text(dumps(sub.gap.as_dict()).decode())
        await ws.send_text(control("ready", topic=sub.topic, cursor=sub.cursor).decode())
        if cfg.ws_direct:
            self.sink = direct_sink(self.send, self.conn, self.binary)
            sub.attach(self.sink, self.sink.run if self.sink is not None else None)
        self._start_writer()

    async def _close(self) -> None:
        exc = self.end
        if isinstance(exc, SessionEnd):
            wait = DEAD_PEER_CLOSE_WAIT_S if exc.dead_peer else CLOSE_WAIT_S
            await close(self.ws, self.conn, exc.code, exc.reason, wait)
            if exc.dead_peer:
                # No close handshake will come back: uvicorn would hold the socket (and a
                # buffer that never drains) until TCP gives up. servers/timers/release.py.
                await release(transport_of(self.send), self.cfg.send_close_timeout_s)
        elif isinstance(exc, TimeoutError):
            self.st.metrics.errors.labels("ws", "send_timeout").inc()
            # 1013 Try Again Later (IANA registry; RFC 6455 7.4.1 leaves it to the registry),
            # as for an overflow: the client fell behind, nothing failed in the server (1011),
            # and no policy was broken (1008); reconnecting from its cursor is the remedy.
            loop = asyncio.get_running_loop()
            budget = self.cfg.send_close_timeout_s
            start = loop.time()
            await close(self.ws, self.conn, CLOSE_TRY_AGAIN, "send timeout", budget)
            # uvicorn keeps a socket whose buffer never drains: close or reset it ourselves.
            left = max(0.0, budget - (loop.time() - start))
            await release(transport_of(self.send), left)
        elif exc is not None and not isinstance(exc, WebSocketDisconnect):
            self.st.metrics.errors.labels("ws", type(exc).__name__).inc()
            log_conn("error", logging.ERROR, conn_id=self.conn.id, error=repr(exc))
            await close(self.ws, self.conn, CLOSE_INTERNAL, "server error")

    async def _release(self) -> None:
        if self.end is None:
            self.end = _ENDED
        self.sub.attach(None)
        if self.beat is not None:
            Heartbeats.remove(self.beat)
        if self.expiry is not None:
            self.expiry.cancel()
        tasks = [t for t in (self.writer, self.pinger) if t is not None]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _arm_expiry(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        if self.principal is not None:
            self.expiry = asyncio.get_running_loop().call_later(
                max(0.0, self.principal.remaining()), self.sub.close, TOKEN_EXPIRED
            )

    def _start_writer(self) -> None:
        """Get a writer task to the buffer (also the callback of Subscription.park)."""
        if self.writer is None and self.end is None:
            self.writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        sub, conn, send, sink = self.sub, self.conn, self.send, self.sink
        watchdog, binary = self.st.watchdog, self.binary
        try:
            while True:
                # With a sink, an idle writer is no task at all: the publisher writes, and a
                # declined event (or the subscription closing) starts a writer again.
                if sink is not None and sub.park(self._start_writer):
                    self.writer = None
                    return
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
            self._stop(SessionEnd(code, closed.reason))
        except TimeoutError as exc:
            self._stop(exc)  # the watchdog's (an OSError subclass): closed as a send timeout
        except OSError:
            # What Starlette's WebSocket.send does with uvicorn's ClientDisconnected.
            self.ws.application_state = WebSocketState.DISCONNECTED
            self._stop(WebSocketDisconnect(1006))
        except Exception as exc:
            self._stop(exc)

    def send_ping(self) -> None:
        """Heartbeat (:class:`servers.timers.heartbeat.Beating`): ``{"type": "ping", "id": n}``."""
        if self.end is not None:
            return  # closing: no new ping (the beat is removed once the close is done)
        self.ping_id += 1
        self.ping_sent = time.monotonic()
        payload = control("ping", id=self.ping_id)
        if self.sink is not None and self.sink.write_control(payload):
            return
        # Not directly writable (a backlog, flow control paused, compression, no sink): an ASGI
        # send that may block; the pong deadline runs from now either way.
        self.pinger = asyncio.get_running_loop().create_task(self._send_ping(payload.decode()))

    async def _send_ping(self, text: str) -> None:
        try:
            await self.ws.send_text(text)
        except Exception:
            pass  # a broken socket is the reader's to notice; a blocked one misses its deadline
        finally:
            self.pinger = None

    def pong_overdue(self) -> None:
        """Heartbeat: no matching pong in time."""
        if self.end is not None:
            return
        self.st.metrics.errors.labels("ws", "heartbeat_timeout").inc()
        self._stop(SessionEnd(CLOSE_INTERNAL, "heartbeat timeout", dead_peer=True))

    async def _read(self) -> None:
        cfg = self.cfg
        bucket = TokenBucket(cfg.ws_rate_per_s, cfg.ws_rate_burst, time.monotonic())
        bad = dropped = 0
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                code = int(message.get("code", 1005))
                self.conn.closing(code, "client")
                self._stop(WebSocketDisconnect(code))
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
            sent, beat = self.ping_sent, self.beat
            if msg.id == self.ping_id and sent is not None and beat is not None:
                self.st.metrics.ping_rtt.observe(time.monotonic() - sent)
                self.ping_sent = None
                self.st.heartbeats.answered(beat)
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
