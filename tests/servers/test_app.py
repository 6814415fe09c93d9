"""servers/fastpath/bare.py: open streams skip the middleware stack, unless one is added."""

from __future__ import annotations

import httpx
import pytest

from experiments.idle_memory import by_package, idle_growth, upgrade_request
from feed.settings import SSE_IMPLS
from tests.support import MS, wait_until

pytestmark = pytest.mark.parametrize("sse_impl", SSE_IMPLS)


def _growth_per_stream(server, n: int) -> dict[str, float]:
    """Python-tracked bytes per idle SSE stream, per package, after 20 warm-up streams."""
    conns = server.app.state.pushlab.conns

    def settle(k: int) -> None:
        wait_until(lambda: len(conns.live) == k, what=f"{k} streams registered")

    growth = idle_growth(server.port, upgrade_request("sse", "t"), b" 200 ", n, settle)
    return {name: size / n for name, size, _ in by_package(growth)}


def test_an_idle_stream_keeps_no_middleware_frames(serve, settings):
    """FastAPI's middlewares (~2.5 KiB of frames per stream when routed through them) hold
    nothing for an idle stream, with either SSE implementation."""
    per_stream = _growth_per_stream(serve(settings), 100)
    assert per_stream.get("fastapi", 0) < 100, per_stream
    assert per_stream.get("pushlab servers", 0) > 0, per_stream  # the streams were measured


class _Seen:
    """A plain ASGI middleware that records the paths it was given."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            _SEEN.append(scope["path"])
        await self.app(scope, receive, send)


_SEEN: list[str] = []


async def test_an_added_middleware_sees_the_streams(serve, settings):
    """Any middleware a user adds (CORS, auth, ...) must see /sse and the polls: the bare
    dispatch stands aside."""
    _SEEN.clear()
    server = serve(settings, customize=lambda app: app.add_middleware(_Seen))
    async with httpx.AsyncClient(base_url=server.url, timeout=10 * MS) as c:
        async with c.stream("GET", "/sse", params={"topic": "t"}) as r:
            assert r.status_code == 200
            async for chunk in r.aiter_raw():
                if b"event: ready" in chunk:
                    break
        assert (await c.get("/poll", params={"topic": "t"})).status_code == 200
    assert {"/sse", "/poll"} <= set(_SEEN)
