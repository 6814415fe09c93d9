"""Request-scoped access to the app's state, and the shared error answers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.requests import HTTPConnection
from starlette.responses import Response

from feed.broker import Broker, resolve_waiter
from feed.codec import dumps
from feed.exceptions import BadInput, CapacityError, PayloadTooLarge, Refused, Unauthorized
from feed.settings import Settings
from feed.ticker import TickerControl
from servers.connections import Connections
from servers.metrics import Metrics
from servers.timers.heartbeat import Heartbeats
from servers.timers.keepalive import KeepAlive
from servers.timers.watchdog import SendWatchdog


class Shutdown(asyncio.Event):
    """The drain signal: an :class:`asyncio.Event` that also resolves the futures parked on it,
    so a long poll waits on one future (no task per waiting request to watch the event)."""

    def __init__(self) -> None:
        super().__init__()
        self.parked: dict[asyncio.Future[None], None] = {}  # an ordered set

    def park(self, waiter: asyncio.Future[None]) -> None:
        """Resolve ``waiter`` when the drain starts (at once if it has); :meth:`unpark` after."""
        if self.is_set():
            resolve_waiter(waiter)
        else:
            self.parked[waiter] = None

    def unpark(self, waiter: asyncio.Future[None]) -> None:
        self.parked.pop(waiter, None)

    def set(self) -> None:
        super().set()
        parked, self.parked = self.parked, {}
        for waiter in parked:
            resolve_waiter(waiter)


@dataclass(slots=True)
class AppState:
    """What the lifespan builds once and every endpoint reads; never module-global.

    ``shutdown`` is set when the server starts draining (SIGTERM): long polls answer 204 at once
    and new streams are refused with 503 while the open ones are told goodbye.
    """

    settings: Settings
    broker: Broker
    shutdown: Shutdown
    ticker: TickerControl | None = None
    metrics: Metrics = field(default_factory=Metrics)
    conns: Connections = field(init=False)
    watchdog: SendWatchdog = field(init=False)
    origins: frozenset[str] = field(init=False)
    heartbeats: Heartbeats = field(init=False)
    sse_keepalive: KeepAlive = field(init=False)

    def __post_init__(self) -> None:
        self.origins = self.settings.origin_allowlist  # parsed once, read per request
        self.conns = Connections(self.settings.max_conns_per_ip, self.metrics)
        self.watchdog = SendWatchdog(self.settings.send_timeout_s)
        self.heartbeats = Heartbeats(
            self.settings.ws_ping_interval_s, self.settings.ws_ping_timeout_s
        )
        self.sse_keepalive = KeepAlive(self.settings.keepalive_s)


class JSON(Response):
    """A JSON response rendered by orjson (FastAPI's JSON is deprecated)."""

    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return content if isinstance(content, bytes) else dumps(content)


def state(conn: HTTPConnection) -> AppState:
    """The :class:`AppState` of the app serving ``conn``."""
    app_state: AppState = conn.app.state.pushlab
    return app_state


def error_body(code: str, detail: object) -> dict[str, object]:
    """The one JSON error shape: ``{"error": code, "detail": ...}``."""
    return {"error": code, "detail": detail}


def status_for(exc: Exception) -> int:
    """HTTP status for a pushlab error."""
    if isinstance(exc, PayloadTooLarge):
        return 413
    if isinstance(exc, BadInput):
        return 400
    if isinstance(exc, CapacityError):
        return 503
    if isinstance(exc, Refused):
        return exc.status
    return 500


async def on_pushlab_error(request: Request, exc: Exception) -> JSON:
    """Answer a :class:`BadInput` or :class:`CapacityError` with its status and JSON body."""
    code = getattr(exc, "code", "unavailable" if isinstance(exc, CapacityError) else "error")
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return JSON(error_body(code, str(exc)), status_code=status_for(exc), headers=headers)


async def on_validation_error(request: Request, exc: Exception) -> JSON:
    """Query/body validation failures: 422 with the field errors."""
    assert isinstance(exc, RequestValidationError)
    detail = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
    return JSON(error_body("invalid_parameter", detail), status_code=422)


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
