"""The FastAPI application: one feed served over four transports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.telemetry import TelemetryConfig

from feed import snapshot
from feed.broker import Broker
from feed.exceptions import CapacityError, PushlabError
from feed.memory import MemoryBroker
from feed.settings import Settings
from feed.ticker import TickerControl, run_controlled
from servers import auth, metrics, policy, publish, routes
from servers.demos import chat, echo, pages, whiteboard
from servers.fastpath.bare import PushlabApp
from servers.state import AppState, Shutdown, on_pushlab_error, on_validation_error
from servers.webtransport import info as webtransport_info


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


def create_app(settings: Settings, broker: Broker | None = None) -> FastAPI:
    """Build the app; ``broker`` may be injected (tests keep one across server restarts)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        the_broker = broker if broker is not None else make_broker(settings)
        shutdown = Shutdown()
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
        wt = None
        if settings.webtransport_port >= 0:
            from servers.webtransport.server import WebTransportServer  # aioquic only when on

            wt = await WebTransportServer(app.state.pushlab).start()
        app.state.webtransport = wt
        ticker = None
        if control is not None:
            ticker = asyncio.create_task(
                run_controlled(the_broker, settings.ticker_topic, control, shutdown)
            )
        try:
            yield
        finally:
            shutdown.set()
            if wt is not None:
                wt.close()
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
    # The transports first: routes are matched in order (once middleware is added), and poll
    # answers are the hot path.
    routes.install(app)
    app.include_router(publish.router)
    app.include_router(auth.router)
    app.include_router(metrics.router)
    app.include_router(webtransport_info.router)
    app.include_router(echo.router)
    app.include_router(chat.router)
    app.include_router(whiteboard.router)
    pages.install(app)
    policy.check_routes(app.routes)
    return app
