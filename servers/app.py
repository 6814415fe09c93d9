"""The FastAPI application: one feed served over four transports."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.telemetry import TelemetryConfig
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from feed import snapshot
from feed.broker import Broker
from feed.exceptions import CapacityError, PushlabError
from feed.memory import MemoryBroker
from feed.settings import Settings
from feed.ticker import TickerControl, run_controlled
from servers import (
    auth,
    long_poll,
    metrics,
    policy,
    publish,
    short_poll,
)
from servers.demos import chat, echo, pages, whiteboard
from servers.fastpath.rawsend import RAW_SEND, RawSend
from servers.sse import endpoint as sse
from servers.state import AppState, on_pushlab_error, on_validation_error
from servers.websocket import endpoint as websocket

TRANSPORT_ROUTERS = (short_poll.router, long_poll.router, sse.router, websocket.router)


def make_broker(settings: Settings) -> Broker:
    """The backend named by ``settings.broker``: ``memory://`` or ``redis://host:port/db``."""
    if settings.broker.startswith("memory://"):
        return MemoryBroker(
            settings.history,
            settings.max_topics,
            history_bytes=settings.history_bytes,
            total_bytes=settings.history_total_bytes,
            max_subscriber_topics=settings.max_subscriber_topics,
        )
    if settings.broker.startswith(("redis://", "rediss://")):
        from feed.redis_broker import RedisBroker  # only servers that use Redis import it

        return RedisBroker(
            settings.broker,
            settings.redis_prefix,
            settings.history,
            settings.max_topics,
            settings.history_bytes,
        )
    raise ValueError(f"unsupported broker URL {settings.broker!r}")


class PushlabApp(FastAPI):
    """FastAPI with :class:`RawSend` outside every middleware, and bare routes for open streams.

    RawSend sits outside ServerErrorMiddleware (which wraps ``send`` for HTTP), so the scope holds
    the server's own ``send``: direct delivery needs to recognise it (servers/fastpath/ws_direct.py,
    servers/fastpath/sse_direct.py).

    An open stream keeps every layer it was dispatched through suspended for its whole life:
    Starlette's error and exception middlewares and their send wrappers, FastAPI's telemetry,
    body-limit and exit-stack middlewares, the router and the route's session wrapper — ~6.5-9 KiB
    of coroutine frames and closures per idle socket (``python -m experiments.idle_memory ws|sse
    1000``), more than the endpoint's own state. So ``/ws`` and the *bare routes* (exact path ->
    ASGI app: ``/sse``, ``/poll``, ``/long-poll``) are dispatched here directly, doing what the
    stack would: the app's exception handlers answer an HTTP exception raised before the response
    starts; ``ws_feed`` answers every refusal itself. Only while no middleware has been added:
    any other (CORS, auth, ...) must see the streams too, and then the normal path is taken.

    Whichever path a request takes, the access policy (:mod:`servers.policy`) is enforced here
    first, once, for every HTTP request and WebSocket upgrade.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bare_routes: dict[str, ASGIApp] = {}

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
        if kind == "websocket":
            if scope["path"] != websocket.PATH:
                await super().__call__(scope, receive, send)
                return
            scope["app"] = self
            scope[RAW_SEND] = send
            await websocket.ws_feed(WebSocket(scope, receive, send))
            return
        bare = self.bare_routes.get(scope["path"])
        if bare is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        scope[RAW_SEND] = send
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


def create_app(settings: Settings, broker: Broker | None = None) -> FastAPI:
    """Build the app; ``broker`` may be injected (tests keep one across server restarts)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        the_broker = broker if broker is not None else make_broker(settings)
        shutdown = asyncio.Event()
        # The ticker runs whenever a rate is set; the dashboard may change it live.
        control = (
            TickerControl(settings.ticker_rate, settings.ticker_size)
            if settings.ticker_rate > 0
            else None
        )
        app.state.pushlab = AppState(settings, the_broker, shutdown, control)
        app.state.whiteboard = whiteboard.Hub(settings)
        await the_broker.start()
        # Only a broker this app owns is snapshotted (an injected one outlives the app anyway).
        memory = the_broker if broker is None and isinstance(the_broker, MemoryBroker) else None
        if memory is not None and settings.snapshot_path:
            memory.restore(snapshot.load(settings.snapshot_path))
        ticker = None
        if control is not None:
            ticker = asyncio.create_task(
                run_controlled(the_broker, settings.ticker_topic, control, shutdown)
            )
        try:
            yield
        finally:
            shutdown.set()
            app.state.pushlab.watchdog.close()
            app.state.pushlab.heartbeats.close()
            app.state.pushlab.sse_keepalive.close()
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            if memory is not None and settings.snapshot_path:
                snapshot.save(settings.snapshot_path, memory.export(), *memory.last_seqs())
            if broker is None:
                await the_broker.close()

    # FastAPI's OpenTelemetry hooks stay off: the lab exports Prometheus metrics (/metrics), and
    # the hooks' "is a provider configured?" probe read os.environ on every request.
    no_otel = TelemetryConfig(tracing=False, metrics=False, logs=False)
    app = PushlabApp(title="pushlab", lifespan=lifespan, telemetry=no_otel)
    app.add_exception_handler(PushlabError, on_pushlab_error)
    app.add_exception_handler(CapacityError, on_pushlab_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    # The transports first: routes are matched in order, and poll answers are the hot path.
    for router in TRANSPORT_ROUTERS:
        app.include_router(router)
    app.include_router(publish.router)
    app.include_router(auth.router)
    app.include_router(metrics.router)
    app.include_router(echo.router)
    app.include_router(chat.router)
    app.bare_routes["/poll"] = short_poll.endpoint
    app.bare_routes["/long-poll"] = long_poll.endpoint
    # Idle streams are most of a server's connections (see PushlabApp), whichever implementation.
    app.bare_routes["/sse"] = sse.endpoint
    app.include_router(whiteboard.router)
    pages.install(app)
    policy.check_routes(app.routes, list(app.bare_routes))
    return app
