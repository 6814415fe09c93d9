"""``RawSend``: the ASGI server's own ``send`` for WebSocket scopes, for the event hot path."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

RAW_SEND = "pushlab.raw_send"


class RawSend:
    """Outermost middleware: stores uvicorn's ``send`` in a WebSocket scope under ``RAW_SEND``.

    Starlette's ``WebSocket.send`` checks the state machine and the exception middleware wraps
    ``send`` twice; for frames sent after ``accept`` none of that can change the outcome, so
    :mod:`servers.ws_session` sends events through the raw callable (one call instead of four).
    Everything else (accept, close, denial responses, control frames) keeps the checked path.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[RAW_SEND] = send
        await self.app(scope, receive, send)
