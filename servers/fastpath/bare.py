"""The bare dispatch: :class:`PushlabApp` serves the hot routes without the middleware stack.

:class:`BareEndpoint` turns a request -> response function into a bare ASGI app. Poll answers are
the hot path of the polling transports, and the middleware stack, router and Starlette's
request/response wrappers add a layer of coroutines to each of them. Refusals raised by the function
reach the app's exception handlers either way (PushlabApp answers them).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from servers import policy
from servers.fastpath.rawsend import RAW_SEND, RawSend

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


@dataclass(frozen=True, slots=True)
class Bare:
    """One hot route: served bare by :class:`PushlabApp`, routed for every other way in."""

    path: str
    endpoint: ASGIApp
    websocket: bool = False

    @property
    def kind(self) -> str:
        """The ASGI scope type it answers."""
        return "websocket" if self.websocket else "http"


class PushlabApp(FastAPI):
    """FastAPI with :class:`RawSend` outside every middleware, and bare routes for open streams.

    RawSend sits outside ServerErrorMiddleware (which wraps ``send`` for HTTP), so the scope holds
    the server's own ``send``: direct delivery needs to recognise it (servers/fastpath/ws_direct.py,
    servers/fastpath/sse_direct.py).

    An open stream keeps every layer it was dispatched through suspended for its whole life:
    Starlette's error and exception middlewares and their send wrappers, FastAPI's telemetry,
    body-limit and exit-stack middlewares, the router and the route's session wrapper — ~6.5-9 KiB
    of coroutine frames and closures per idle socket (``python -m experiments.idle_memory ws|sse
    1000``), more than the endpoint's own state. So the *bare routes* (:data:`servers.routes.BARE`,
    exact path -> ASGI app: ``/ws``, ``/sse``, ``/poll``, ``/long-poll``) are dispatched here
    directly, doing what the
    stack would: the app's exception handlers answer an HTTP exception raised before the response
    starts; ``ws_feed`` answers every refusal itself. Only while no middleware has been added:
    any other (CORS, auth, ...) must see the streams too, and then the normal path is taken.

    Whichever path a request takes, the access policy (:mod:`servers.policy`) is enforced here
    first, once, for every HTTP request and WebSocket upgrade.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # (scope type, path) -> ASGI app; filled from servers.routes.BARE by serve_bare.
        self.bare_routes: dict[tuple[str, str], ASGIApp] = {}

    def serve_bare(self, routes: Iterable[Bare]) -> None:
        """Route each of ``routes`` (the way in once middleware is added) and serve it bare."""
        for bare in routes:
            if bare.websocket:
                self.router.routes.append(WebSocketRoute(bare.path, bare.endpoint))
            else:
                self.router.routes.append(Route(bare.path, bare.endpoint, include_in_schema=False))
            self.bare_routes[(bare.kind, bare.path)] = bare.endpoint

    def build_middleware_stack(self) -> ASGIApp:
        return RawSend(super().build_middleware_stack())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await super().__call__(scope, receive, send)
            return
        if not await policy.enforce(self.state.pushlab, scope, receive, send):
            return
        if self.user_middleware:
            await super().__call__(scope, receive, send)
            return
        bare = self.bare_routes.get((kind, scope["path"]))
        if bare is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        scope[RAW_SEND] = send
        if kind == "websocket":  # the endpoint answers every refusal itself
            await bare(scope, receive, send)
            return
        try:
            await bare(scope, receive, send)
        except Exception as exc:
            handler = next(
                (
                    self.exception_handlers[c]
                    for c in type(exc).__mro__
                    if c in self.exception_handlers
                ),
                None,
            )
            if handler is None:
                raise
            response = handler(Request(scope, receive), exc)
            if inspect.isawaitable(response):
                response = await response
            await response(scope, receive, send)
