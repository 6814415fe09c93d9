"""GET /sse on a real server: preamble, resume precedence, keep-alives, end of stream."""

import httpx
import pytest

from feed.settings import SSE_IMPLS
from tests.support import MS

# Every test here runs against each SSE implementation (the fixture settings follow sse_impl).
pytestmark = pytest.mark.parametrize("sse_impl", SSE_IMPLS)


async def read_until(response: httpx.Response, marker: bytes, limit: int = 1 << 20) -> bytes:
    """Raw stream bytes until ``marker`` has been seen."""
    buf = b""
    async for chunk in response.aiter_raw():
        buf += chunk
        if marker in buf or len(buf) > limit:
            return buf
    return buf


async def publish(c: httpx.AsyncClient, n: int, topic: str = "t") -> None:
    for i in range(n):
        await c.post("/publish", params={"topic": topic}, json=i)


@pytest.fixture
async def http(live):
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * MS) as c:
        yield c


async def test_preamble_then_events(http):
    """retry first, then ready with the cursor as id, then id/data events."""
    await publish(http, 2)
    async with http.stream("GET", "/sse", params={"topic": "t", "since": 1}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = await read_until(r, b"id: 2\ndata:")
    assert raw.startswith(b"retry: 1000\n\n")
    assert b'id: 1\nevent: ready\ndata: {"type":"ready","topic":"t","cursor":1}\n\n' in raw
    assert b'id: 2\ndata: {"topic":"t","seq":2,' in raw


async def test_last_event_id_wins_over_since(http):
    """A browser reconnect sends Last-Event-ID with the original ?since=: the header wins."""
    await publish(http, 5)
    headers = {"Last-Event-ID": "4"}
    async with http.stream("GET", "/sse", params={"topic": "t", "since": 0}, headers=headers) as r:
        raw = await read_until(r, b"id: 5\ndata:")
    assert b"id: 1\ndata:" not in raw and b"id: 4\nevent: ready" in raw


@pytest.mark.parametrize("header,param", [({"Last-Event-ID": "x"}, {}), ({}, {"since": "-3"})])
async def test_bad_resume_point_is_400(http, header, param):
    """A bad Last-Event-ID or since is refused with 400 before the stream starts."""
    r = await http.get("/sse", params={"topic": "t", **param}, headers=header)
    assert (r.status_code, r.json()["error"]) == (400, "bad_cursor")


@pytest.mark.parametrize(
    ("method", "params", "status", "error"),
    [
        ("GET", {}, 422, "invalid_parameter"),
        ("GET", {"topic": "a b"}, 400, "bad_topic"),
        ("POST", {"topic": "t"}, 405, None),
        ("HEAD", {"topic": "t"}, 405, None),
    ],
)
async def test_refusals_are_http_answers(http, method, params, status, error):
    """A missing or bad topic, or a method other than GET, is answered before any stream."""
    r = await http.request(method, "/sse", params=params)
    assert r.status_code == status
    if error is not None:
        assert r.json()["error"] == error
    if status == 405:
        assert r.headers["allow"] == "GET"


async def test_gap_event_before_ready(serve, settings):
    """Resuming past the history sends event: gap (recovered=false) before ready."""
    server = serve(settings.replace(history=2))
    async with httpx.AsyncClient(base_url=server.url, timeout=10 * MS) as c:
        await publish(c, 5)
        async with c.stream("GET", "/sse", params={"topic": "t", "since": 1}) as r:
            raw = await read_until(r, b"event: ready")
    gap_at = raw.index(b"event: gap\ndata: ")
    assert b'"recovered":false' in raw and b'"oldest_seq":4' in raw
    assert gap_at < raw.index(b"event: ready")


async def test_keepalive_comments(serve, settings):
    """An idle stream carries comment keep-alives."""
    server = serve(settings.replace(keepalive_s=0.05))
    async with httpx.AsyncClient(base_url=server.url, timeout=10 * MS) as c:
        async with c.stream("GET", "/sse", params={"topic": "idle"}) as r:
            raw = await read_until(r, b": ping")
    assert b"\n: ping" in raw or raw.count(b": ping") >= 1


async def test_kick_ends_stream_with_reason(serve, settings):
    """The server ending the stream says why, then closes the response."""
    live = serve(settings.replace(admin=True))
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=10 * MS) as http,
        http.stream("GET", "/sse", params={"topic": "t"}) as r,
    ):
        chunks = r.aiter_raw()
        first = await chunks.__anext__()
        assert b"event: ready" in first
        async with httpx.AsyncClient(base_url=live.url) as admin:
            await admin.post("/admin/kick", params={"topic": "t"})
        rest = b"".join([c async for c in chunks])
    assert b'event: end\ndata: {"type":"end","reason":"kicked"}' in rest
