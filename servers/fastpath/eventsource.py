"""sse-starlette's ``EventSourceResponse`` with its private hooks overridden (``sse_impl =
"sse-starlette"``): the per-send timeout on the app's watchdog, body chunks through the raw
``send``, and no per-stream shutdown watcher.

Overrides ``__call__``, ``_send_with_timeout`` and calls ``_stream_response``, ``_ping``,
``_listen_for_disconnect``, ``ping_interval`` and ``sse_starlette._utils.collapse_excgroups`` of
the pinned sse-starlette (tests/servers/test_fastpath_pins.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
from sse_starlette import EventSourceResponse
from sse_starlette._utils import collapse_excgroups
from sse_starlette.sse import SendTimeoutError
from starlette.types import Message, Receive, Scope, Send

from servers.fastpath.rawsend import RAW_SEND, transport_of
from servers.sse.stream import SEND_TIMEOUT, send_timed_out

if TYPE_CHECKING:
    from servers.connections import Conn
    from servers.state import AppState
    from servers.timers.watchdog import SendWatchdog


class WatchedEventSourceResponse(EventSourceResponse):
    """sse-starlette's response with its per-send timeout enforced by the app's watchdog.

    sse-starlette wraps every chunk in ``anyio.move_on_after(send_timeout)`` (~10% of server CPU
    at 200 subscribers x 200 events/s); :class:`servers.timers.watchdog.SendWatchdog` keeps the same
    behaviour — a send stalled past ``send_timeout_s`` raises ``SendTimeoutError`` and ends the
    response — with one shared timer. Overrides a private hook of the pinned sse-starlette.
    """

    def __init__(self, *args: object, st: AppState, conn: list[Conn], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.st = st
        self.watchdog: SendWatchdog = st.watchdog
        self.conn = conn
        self.raw_send: Send | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # sse-starlette's own __call__ (HEAD, WebSocket denial and background task aside, which
        # this endpoint never needs) minus its per-stream shutdown watcher: that task, its cancel
        # scope and anyio Event were ~6.7 KiB per idle stream (experiments.idle_memory). With the
        # grace period we gave it (shutdown_timeout_s) it cancelled a stream when uvicorn's own
        # timeout_graceful_shutdown does anyway; the goodbye (event: end) comes from our drain
        # (servers.runner) before either.
        self.raw_send = scope.get(RAW_SEND)
        try:
            with collapse_excgroups():
                async with anyio.create_task_group() as group:

                    async def cancel_on_finish(coro: Callable[[], Awaitable[None]]) -> None:
                        await coro()
                        group.cancel_scope.cancel()

                    group.start_soon(cancel_on_finish, lambda: self._stream_response(send))
                    if self.ping_interval > 0:
                        group.start_soon(cancel_on_finish, lambda: self._ping(send))
                    group.start_soon(cancel_on_finish, lambda: self._listen_for_disconnect(receive))
        except SendTimeoutError:
            # A drop, not a server error: no traceback ("Exception in ASGI application").
            await send_timed_out(self.st, self.conn, transport_of(self.raw_send), receive)

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        # Body chunks skip the two middleware wrappers (see servers.fastpath.rawsend); the response
        # start and the final empty chunk keep them.
        if self.raw_send is not None and message.get("more_body"):
            send = self.raw_send
        try:
            with self.watchdog:
                await send(message)
        except TimeoutError:
            for conn in self.conn:
                conn.closing(None, SEND_TIMEOUT)
            raise SendTimeoutError() from None
