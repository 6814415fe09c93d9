"""Direct SSE delivery on a real server: used when on, never when off, and lossless when it
alternates with the buffered path (a reader that stops reading, then resumes)."""

from __future__ import annotations

import httpx
import pytest

from feed.settings import SSE_IMPLS
from servers.connections import Conn
from servers.fastpath.sse_direct import make_sink
from servers.launch import ServerThread
from tests.servers.rawsse import RawSSE
from tests.servers.test_metrics import scrape
from tests.support import async_wait_until

SENT = ("pushlab_events_sent_total", (("transport", "sse"),))
DIRECT = ("pushlab_events_direct_total", (("transport", "sse"),))


async def publish(url: str, payloads: list[object]) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        for p in payloads:
            r = await http.post(f"{url}/publish", params={"topic": "t"}, json=p)
            assert r.status_code == 200


async def counts(url: str) -> tuple[float, float]:
    m = await scrape(url)
    return m.get(SENT, 0.0), m.get(DIRECT, 0.0)


@pytest.mark.parametrize("impl", SSE_IMPLS)
@pytest.mark.parametrize("http", ["httptools", "h11"])
@pytest.mark.parametrize("direct", [True, False], ids=["direct", "buffered"])
async def test_direct_delivery_only_when_on(serve, settings, impl, http, direct):
    """Events published to a parked stream are written by the publisher iff sse_direct is on;
    the chunk framing and the events are the same either way."""
    server = serve(
        settings.replace(sse_direct=direct, sse_impl=impl), uvicorn_options={"http": http}
    )
    sse = await RawSSE.open(server.port, "topic=t")
    try:
        assert sse.status == 200
        await sse.read_until(b"event: ready")
        await publish(server.url, list(range(20)))
        await sse.read_until(b"id: 20\n")
        assert sse.ids() == list(range(1, 21))
        sent, by_publisher = await counts(server.url)
        assert sent == 20
        if direct:
            assert by_publisher > 0
        else:
            assert by_publisher == 0
    finally:
        sse.close()


@pytest.mark.parametrize("impl", SSE_IMPLS)
async def test_order_kept_when_direct_and_buffered_alternate(serve, settings, impl):
    """A reader that stops reading makes the socket back up (the sink declines, events buffer
    behind the stream task); once it reads again delivery goes direct again. Every event arrives
    once, in order."""
    server = serve(settings.replace(sse_impl=impl, send_timeout_s=60))
    sse = await RawSSE.open(server.port, "topic=t", rcvbuf=4096)
    try:
        await sse.read_until(b"event: ready")
        await publish(server.url, [0, 1, 2])
        await sse.read_until(b"id: 3\n")
        _, direct_before = await counts(server.url)
        assert direct_before == 3
        # ~8 MB while not reading: past loopback's largest kernel send buffer (tcp_wmem max).
        await publish(server.url, ["x" * 60_000] * 140)
        sent, direct_stalled = await counts(server.url)
        assert direct_stalled < 3 + 140, "nothing took the buffered path"
        await sse.read_until(b"id: 143\n")
        await publish(server.url, [3, 4, 5])
        await sse.read_until(b"id: 146\n")
        assert sse.ids() == list(range(1, 147))

        async def settled() -> bool:
            return (await counts(server.url))[0] == 146

        await async_wait_until(settled, 5, "all events counted")
        _, direct_after = await counts(server.url)
        assert direct_after == direct_stalled + 3, "delivery did not go direct again"
    finally:
        sse.close()


def test_no_sink_for_a_send_that_is_not_uvicorns():
    """A wrapped or foreign send gets no sink (the buffered path serves it)."""

    async def wrapped(message: object) -> None:
        pass

    conn = Conn("c", "sse", "127.0.0.1:1", "127.0.0.1")
    assert make_sink(wrapped, conn) is None
    assert make_sink(None, conn) is None


@pytest.mark.parametrize("impl", SSE_IMPLS)
async def test_another_server_gets_the_buffered_path(settings, impl):
    """Under hypercorn (not uvicorn's cycle) there is no sink and the pushlab implementation
    falls back to sse-starlette's response: the stream still works, nothing goes direct."""
    with ServerThread(settings.replace(sse_impl=impl), server="hypercorn") as server:
        url = f"http://127.0.0.1:{server.port}"
        sse = await RawSSE.open(server.port, "topic=t")
        try:
            assert sse.status == 200
            await sse.read_until(b"event: ready")
            await publish(url, [0, 1, 2, 3, 4])
            await sse.read_until(b"id: 5\n")
            assert sse.ids() == [1, 2, 3, 4, 5]
            assert await counts(url) == (5, 0)
        finally:
            sse.close()


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "buffered"])
async def test_keepalive_between_events_on_a_parked_stream(serve, settings, direct):
    """pushlab's app-wide keep-alive timer reaches a parked stream, written by the timer
    (direct) or by the stream's task; events before and after it stay whole and in order."""
    server = serve(settings.replace(sse_impl="pushlab", sse_direct=direct, keepalive_s=0.05))
    sse = await RawSSE.open(server.port, "topic=t")
    try:
        await sse.read_until(b"event: ready")
        await publish(server.url, [0])
        first = (await sse.read_until(b"id: 1\n")).index(b"id: 1\n")
        await sse.read_until(b": ping\n\n", after=first)
        await publish(server.url, [1])
        await sse.read_until(b"id: 2\n")
        body = sse.body
        assert first < body.index(b": ping\n\n", first) < body.index(b"id: 2\n")
        assert sse.ids() == [1, 2]
        assert (await counts(server.url))[1] == (2 if direct else 0)
    finally:
        sse.close()
