"""Origin allowlist: cross-site requests are refused before any upgrade or stream (CSWSH)."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support import each_sse_impl

ALLOWED = "https://lab.example"


@pytest.fixture
def server(serve, settings):
    return serve(settings.replace(origins=f"{ALLOWED}, http://localhost:3000/"))


async def test_ws_cross_site_origin_gets_403_before_upgrade(server):
    """A foreign Origin never gets a 101; allowed and absent Origins do."""
    ws_url = server.url.replace("http", "ws") + "/ws?topic=t"
    for evil in ("https://evil.example", "null", "https://lab.example.evil.example"):
        with pytest.raises(InvalidStatus) as info:
            async with connect(ws_url, origin=evil):  # type: ignore[arg-type]
                pass
        assert info.value.response.status_code == 403, evil
        assert b"origin_not_allowed" in info.value.response.body
    for ok in (ALLOWED, "http://localhost:3000"):
        async with connect(ws_url, origin=ok) as ws:  # type: ignore[arg-type]
            assert '"ready"' in await ws.recv()
    async with connect(ws_url) as ws:  # non-browser clients send no Origin
        assert '"ready"' in await ws.recv()


@pytest.mark.parametrize(
    ("path", "sse_impl"), each_sse_impl(["/poll", "/long-poll", "/sse", "/stream"], "/sse")
)
async def test_http_transports_check_origin(server, path):
    """SSE, NDJSON streams and polling refuse a foreign Origin with 403 and serve an allowed one."""
    params = {"topic": "t", "since": "0", "timeout": "0.05"}
    async with httpx.AsyncClient(trust_env=False, base_url=server.url, timeout=5) as http:
        r = await http.get(path, params=params, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and r.json()["error"] == "origin_not_allowed"
        if path not in ("/sse", "/stream"):
            r = await http.get(path, params=params, headers={"Origin": ALLOWED})
            assert r.status_code in (200, 204)
        else:
            async with http.stream("GET", path, params=params, headers={"Origin": ALLOWED}) as s:
                assert s.status_code == 200


async def test_empty_allowlist_allows_all(live):
    """The default (empty) allowlist does not check Origin at all."""
    ws_url = live.url.replace("http", "ws") + "/ws?topic=t"
    async with connect(ws_url, origin="https://anything.example") as ws:  # type: ignore[arg-type]
        assert '"ready"' in await ws.recv()
