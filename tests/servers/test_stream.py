"""``GET /stream``: NDJSON lines on a real server, read on a raw socket (strict chunk framing)."""

from __future__ import annotations

import json

import httpx
import pytest

from feed.wire.contract import CURSOR_HEADER, NDJSON_TYPE
from feed.wire.http1 import parse_response_head
from servers.launch import ServerThread
from tests.servers.rawsse import RawSSE
from tests.servers.test_metrics import scrape
from tests.support import async_wait_until

SENT = ("pushlab_events_sent_total", (("transport", "stream"),))
DIRECT = ("pushlab_events_direct_total", (("transport", "stream"),))


async def publish(url: str, payloads: list[object]) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        for p in payloads:
            r = await http.post(f"{url}/publish", params={"topic": "t"}, json=p)
            assert r.status_code == 200


async def open_stream(port: int, query: str = "topic=t", **kwargs: object) -> RawSSE:
    stream = await RawSSE.open(port, query, path="/stream", **kwargs)  # type: ignore[arg-type]
    assert stream.status == 200, stream.head
    return stream


def lines(stream: RawSSE) -> list[dict[str, object]]:
    body = stream.body
    assert body.endswith(b"\n") or not body, body[-80:]
    return [json.loads(line) for line in body.splitlines()]


def seqs(stream: RawSSE) -> list[int]:
    return [int(str(o["seq"])) for o in lines(stream) if "type" not in o]


async def test_ready_then_events_resumed_by_header(live):
    """``Pushlab-Cursor`` wins over ``?since`` (a reconnect keeps its URL); each event is the
    JSON every transport carries, one per line."""
    await publish(live.url, [0, 1, 2])
    stream = await open_stream(live.port, "topic=t&since=0", headers={CURSOR_HEADER: "1"})
    try:
        assert parse_response_head(stream.head).headers["content-type"] == NDJSON_TYPE
        await stream.read_until(b'"seq":3')
        await publish(live.url, [3])
        await stream.read_until(b'"seq":4')
        got = lines(stream)
        assert got[0] == {"type": "ready", "topic": "t", "cursor": 1}
        assert [o["data"] for o in got[1:]] == [1, 2, 3]
        assert seqs(stream) == [2, 3, 4]
    finally:
        stream.close()


async def test_gap_line_before_ready_when_the_cursor_is_ahead(live):
    """A cursor past the last seq gets the same ``gap`` as every transport, then ``ready``."""
    await publish(live.url, [0])
    stream = await open_stream(live.port, "topic=t&since=9")
    try:
        await stream.read_until(b'"ready"')
        gap, ready = lines(stream)[:2]
        assert (gap["type"], gap["reason"], gap["resume_after"]) == ("gap", "ahead", 0)
        assert ready == {"type": "ready", "topic": "t", "cursor": 0}
    finally:
        stream.close()


@pytest.mark.parametrize(
    ("request_kwargs", "status"),
    [
        ({"headers": {CURSOR_HEADER: "-1"}}, 400),
        ({"headers": {CURSOR_HEADER: "x"}}, 400),
        ({"params": {"topic": "t", "since": "1e3"}}, 400),
        ({"method": "POST"}, 405),
    ],
)
async def test_bad_requests_get_a_plain_answer(live, request_kwargs, status):
    """A bad cursor (header or query) is 400 bad_cursor and another method 405, before any
    stream starts."""
    kwargs: dict[str, object] = {"method": "GET", "params": {"topic": "t"}, **request_kwargs}
    async with httpx.AsyncClient(trust_env=False, base_url=live.url) as http:
        r = await http.request(url="/stream", **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status, r.text
    if status == 400:
        assert r.json()["error"] == "bad_cursor"


@pytest.mark.parametrize("http", ["httptools", "h11"])
@pytest.mark.parametrize("direct", [True, False], ids=["direct", "buffered"])
async def test_direct_delivery_only_when_on(serve, settings, http, direct):
    """Live events to a parked stream are written by the publisher iff sse_direct is on, with
    the same lines and chunk framing either way."""
    server = serve(settings.replace(sse_direct=direct), uvicorn_options={"http": http})
    stream = await open_stream(server.port)
    try:
        await stream.read_until(b'"ready"')
        await publish(server.url, list(range(20)))
        await stream.read_until(b'"seq":20,')
        assert seqs(stream) == list(range(1, 21))
        m = await scrape(server.url)
        assert m.get(SENT) == 20
        assert (m.get(DIRECT, 0.0) > 0) is direct
    finally:
        stream.close()


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "buffered"])
async def test_heartbeat_lines_from_the_app_timer(serve, settings, direct):
    """The app-wide keep-alive timer reaches a parked stream as a heartbeat line; events
    around it stay whole and in order."""
    server = serve(settings.replace(sse_direct=direct, keepalive_s=0.05))
    stream = await open_stream(server.port)
    try:
        await stream.read_until(b'"ready"')
        await publish(server.url, [0])
        first = (await stream.read_until(b'"seq":1,')).index(b'"seq":1,')
        await stream.read_until(b'{"type":"heartbeat"}\n', after=first)
        await publish(server.url, [1])
        await stream.read_until(b'"seq":2,')
        assert seqs(stream) == [1, 2]
    finally:
        stream.close()


async def test_order_kept_when_direct_and_buffered_alternate(serve, settings):
    """A reader that stops reading backs the socket up (events buffer behind the stream task);
    once it reads again, every event arrives once, in order."""
    server = serve(settings.replace(send_timeout_s=60))
    stream = await open_stream(server.port, rcvbuf=4096)
    try:
        await stream.read_until(b'"ready"')
        # ~8 MB while not reading: past loopback's largest kernel send buffer (tcp_wmem max).
        await publish(server.url, ["x" * 60_000] * 140)
        m = await scrape(server.url)
        assert m.get(DIRECT, 0.0) < 140, "nothing took the buffered path"
        await stream.read_until(b'"seq":140,', timeout=30)
        await publish(server.url, [1, 2])
        await stream.read_until(b'"seq":142,')
        assert seqs(stream) == list(range(1, 143))
    finally:
        stream.close()


async def test_kick_ends_the_stream_with_an_end_line(serve, settings):
    """/admin/kick says goodbye on /stream as SSE does: an end line, then the last chunk."""
    server = serve(settings.replace(admin=True))
    stream = await open_stream(server.port)
    try:
        await stream.read_until(b'"ready"')
        async with httpx.AsyncClient(trust_env=False) as http:
            r = await http.post(f"{server.url}/admin/kick", params={"topic": "t"})
        assert r.status_code == 200, r.text
        await stream.read_until(b"never", timeout=10)  # until the response ends
        assert stream.ended and lines(stream)[-1] == {"type": "end", "reason": "kicked"}
    finally:
        stream.close()


async def test_the_per_ip_cap_is_a_429_before_the_stream(serve, settings):
    """A second stream from an IP at its cap is refused with an HTTP answer, not a cut 200."""
    server = serve(settings.replace(max_conns_per_ip=1))
    stream = await open_stream(server.port)
    try:
        await stream.read_until(b'"ready"')
        async with httpx.AsyncClient(trust_env=False) as http:
            r = await http.get(f"{server.url}/stream", params={"topic": "t"})
        assert (r.status_code, r.json()["error"]) == (429, "too_many_connections")
    finally:
        stream.close()


async def test_another_server_gets_the_same_stream(settings):
    """Under hypercorn (no uvicorn cycle: a second task waits for the disconnect) the stream
    serves the same lines, heartbeats included, and a client that leaves is unsubscribed."""
    with ServerThread(settings.replace(keepalive_s=0.05), server="hypercorn") as server:
        url = f"http://127.0.0.1:{server.port}"
        stream = await open_stream(server.port)
        try:
            await stream.read_until(b'"ready"')
            await publish(url, [0, 1, 2])
            await stream.read_until(b'"seq":3,')
            await stream.read_until(b'{"type":"heartbeat"}\n')
            assert seqs(stream) == [1, 2, 3]
            assert (await scrape(url)).get(DIRECT, 0.0) == 0
        finally:
            stream.close()

        async def unsubscribed() -> bool:
            async with httpx.AsyncClient(trust_env=False) as http:
                health = (await http.get(f"{url}/healthz")).json()
            return bool(health["broker"]["subscribers"] == 0 and not health["connections"])

        await async_wait_until(unsubscribed, 5, "the stream's subscription freed")
