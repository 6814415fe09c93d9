"""WS /ws on a real server: refusals before upgrade, control frames, garbage, slow consumers."""

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from feed.memory import MemoryBroker
from tests.support import MS


def ws_url(server, query: str) -> str:
    return server.url.replace("http", "ws", 1) + "/ws?" + query


async def recv_json(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), 10 * MS))


@pytest.mark.parametrize("query", ["topic=t&since=-1", "topic=t&since=x", "topic=a%20b", ""])
async def test_bad_query_refused_before_upgrade(live, query):
    """Bad topic or cursor: HTTP 400 with a JSON body, no WebSocket."""
    with pytest.raises(InvalidStatus) as err:
        async with connect(ws_url(live, query)):
            pass
    response = err.value.response
    assert response.status_code == 400
    assert json.loads(response.body)["error"] in ("bad_cursor", "bad_topic")


async def test_ready_then_events_and_gap(serve, settings):
    """Past-history resume: gap frame, ready frame, then events as bare JSON."""
    server = serve(settings.replace(history=2))
    async with httpx.AsyncClient(base_url=server.url) as c:
        for i in range(4):
            await c.post("/publish", params={"topic": "t"}, json=i)
    async with connect(ws_url(server, "topic=t&since=0")) as ws:
        gap, ready = await recv_json(ws), await recv_json(ws)
        events = [await recv_json(ws), await recv_json(ws)]
    assert (gap["type"], gap["recovered"], gap["oldest_seq"]) == ("gap", False, 3)
    assert (ready["type"], ready["cursor"]) == ("ready", 2)
    assert [e["seq"] for e in events] == [3, 4] and "type" not in events[0]


async def test_ping_and_publish_messages(live):
    """Client ping gets pong; client publish is sequenced and delivered back."""
    async with connect(ws_url(live, "topic=t")) as ws:
        assert (await recv_json(ws))["type"] == "ready"
        await ws.send(json.dumps({"type": "ping", "id": 7}))
        assert await recv_json(ws) == {"type": "pong", "id": 7}
        await ws.send(json.dumps({"type": "publish", "data": {"x": 1}, "id": "a"}))
        replies = [await recv_json(ws), await recv_json(ws)]
    published = next(r for r in replies if r.get("type") == "published")
    event = next(r for r in replies if "type" not in r)
    assert published == {"type": "published", "seq": 1, "id": "a"}
    assert event["data"] == {"x": 1}


async def test_garbage_gets_error_frames_then_1008(serve, settings):
    """Each bad frame gets an error frame and the socket stays up, until the limit closes it."""
    server = serve(settings.replace(ws_max_bad_messages=4))
    async with connect(ws_url(server, "topic=t")) as ws:
        await recv_json(ws)
        errors = []
        for frame in ["not json", "[1]", json.dumps({"type": "nope"})]:
            await ws.send(frame)
            errors.append((await recv_json(ws))["error"])
        await ws.send(b"\x00binary")
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(ws)
    assert errors == ["invalid_json", "unknown_message", "unknown_message"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_oversized_frame_closed_1009(serve, settings):
    """A frame over the limit is closed with 1009 by the server."""
    server = serve(settings, uvicorn_options={"ws_max_size": 1024})
    async with connect(ws_url(server, "topic=t")) as ws:
        await recv_json(ws)
        await ws.send("x" * 4096)
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


class LoopBroker(MemoryBroker):
    """Remembers the server's loop so a test can publish a burst inside it."""

    loop: asyncio.AbstractEventLoop

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()


async def test_slow_consumer_closed_1013(serve, settings):
    """A subscriber more than subscriber_buffer events behind is closed with 1013.

    A burst with no await point only leaves the writer task behind when events take the
    buffered path; with direct delivery they go straight to this (reading) client instead, see
    tests/servers/test_ws_direct.py, which also closes a reader that really stopped with 1013.
    """
    broker = LoopBroker(settings.history)
    server = serve(settings.replace(subscriber_buffer=5, ws_direct=False), broker=broker)

    async def burst() -> None:
        for i in range(50):  # no await point between publishes: the writer cannot drain
            broker.append(broker._topic("t"), _event(broker, i))

    def _event(b, i):
        from feed.codec import encode_event

        return encode_event("t", b._topic("t").history.last_seq + 1, 0, i)

    async with connect(ws_url(server, "topic=t")) as ws:
        await recv_json(ws)
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(burst(), broker.loop))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await recv_json(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
