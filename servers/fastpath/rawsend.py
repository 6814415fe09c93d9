"""``RawSend``: the ASGI server's own ``send``, kept in the scope for the event hot path."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

RAW_SEND = "pushlab.raw_send"


class RawSend:
    """Outermost wrapper (:class:`servers.fastpath.bare.PushlabApp`): stores uvicorn's ``send`` in
    the scope under ``RAW_SEND``.

    Starlette's ``WebSocket.send`` checks the state machine and the error and exception
    middlewares wrap ``send`` (they only watch for the response start); for WebSocket frames
    after ``accept`` and SSE body chunks after the response start none of that can change the
    outcome, so :mod:`servers.websocket.session` and :mod:`servers.sse` send events through the
    raw callable. Everything else (accept, close, denials, response start) keeps the checked path.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("websocket", "http"):
            scope[RAW_SEND] = send
        await self.app(scope, receive, send)


def transport_of(send: object) -> Any | None:
    """The transport behind uvicorn's ``send`` (a WebSocket protocol's or an HTTP cycle's)."""
    return getattr(getattr(send, "__self__", None), "transport", None)
