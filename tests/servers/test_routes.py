"""servers/routes.py: one table of the hot routes; PushlabApp's bare dispatch is derived from it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.routing import Route, WebSocketRoute
from websockets.asyncio.client import connect

from servers.app import create_app
from servers.routes import BARE
from tests.support import MS


def test_the_bare_dispatch_is_the_table(settings):
    """Every (scope type, path) the app serves bare is a table entry, and nothing else is."""
    app: Any = create_app(settings)
    assert app.bare_routes == {(b.kind, b.path): b.endpoint for b in BARE}
    assert {b.path for b in BARE} == {"/poll", "/long-poll", "/sse", "/ws", "/stream"}


def test_each_table_route_is_registered_once(settings):
    """The route the middleware path takes is the table's endpoint, registered once."""
    app = create_app(settings)
    for bare in BARE:
        routes = [r for r in app.routes if getattr(r, "path", None) == bare.path]
        assert len(routes) == 1, (bare.path, routes)
        kind = WebSocketRoute if bare.websocket else Route
        assert isinstance(routes[0], kind), routes[0]
        assert routes[0].endpoint is bare.endpoint


class _Seen:
    """A plain ASGI middleware that records the (type, path) of what it was given."""

    seen: list[tuple[str, str]] = []

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        _Seen.seen.append((scope["type"], scope.get("path", "")))
        await self.app(scope, receive, send)


def _record_bare(app: Any) -> None:
    """Wrap each bare entry so that a call through the bare dispatch is recorded."""

    def recorder(key: tuple[str, str], endpoint: Any) -> Any:
        async def recorded(scope: Any, receive: Any, send: Any) -> None:
            _Seen.seen.append(key)
            await endpoint(scope, receive, send)

        return recorded

    app.bare_routes = {key: recorder(key, ep) for key, ep in app.bare_routes.items()}


async def _use_every_route(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10 * MS) as c:
        poll = await c.get("/poll", params={"topic": "t"})
        assert poll.status_code == 200 and poll.json()["topic"] == "t"
        long_poll = await c.get("/long-poll", params={"topic": "t", "timeout": "0.01"})
        assert long_poll.status_code == 204 and "pushlab-cursor" in long_poll.headers
        async with c.stream("GET", "/sse", params={"topic": "t"}) as r:
            assert r.status_code == 200
            async for chunk in r.aiter_raw():
                if b"event: ready" in chunk:
                    break
        async with c.stream("GET", "/stream", params={"topic": "t"}) as r:
            assert r.status_code == 200
            assert json.loads(await anext(r.aiter_lines()))["type"] == "ready"
    ws_url = url.replace("http://", "ws://") + "/ws?topic=t"
    async with connect(ws_url) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"


@pytest.mark.parametrize("middleware", [False, True], ids=["bare", "routed"])
async def test_every_table_route_is_served(serve, settings, middleware):
    """Without middleware each table route is served by the bare dispatch; with one added, by
    its route, through the middleware. Either way the endpoint answers as itself."""
    _Seen.seen = []
    customize = (lambda app: app.add_middleware(_Seen)) if middleware else _record_bare
    server = serve(settings, customize=customize)
    await _use_every_route(server.url)
    assert set(_Seen.seen) >= {(b.kind, b.path) for b in BARE}
