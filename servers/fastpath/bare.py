"""A request -> response function as a bare ASGI app (see :class:`servers.app.PushlabApp`).

Poll answers are the hot path of the polling transports, and the middleware stack, router and
Starlette's request/response wrappers add a layer of coroutines to each of them. Refusals raised
by the function reach the app's exception handlers either way (PushlabApp answers them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

Handler = Callable[[Request], Awaitable[Response]]


class BareEndpoint:
    """``GET`` (and ``HEAD``) only, as a routed ``methods=["GET"]`` endpoint answers."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(405, headers={"Allow": "GET"})
        response = await self.handler(Request(scope, receive))
        await response(scope, receive, send)
