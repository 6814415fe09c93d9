"""MessagePack binary feed frames: selected per socket, encoded once per event."""

from __future__ import annotations

import asyncio

import httpx
import msgpack
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from clients import Received, WebSocketClient
from feed.memory import MemoryBroker
from tests.support import MS


async def publish(url: str, n: int) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        for i in range(n):
            await http.post(f"{url}/publish", params={"topic": "t"}, json={"i": i})


@pytest.mark.parametrize(
    "how", [{"query": "&format=msgpack"}, {"subprotocols": ["pushlab.msgpack.v1"]}]
)
async def test_msgpack_frames_by_query_or_subprotocol(live, how):
    """Events come as binary MessagePack frames; control frames stay JSON text."""
    await publish(live.url, 3)
    url = live.url.replace("http", "ws") + "/ws?topic=t&since=0" + how.get("query", "")
    async with connect(url, subprotocols=how.get("subprotocols")) as ws:
        assert isinstance(await ws.recv(), str)  # ready
        frames = [await asyncio.wait_for(ws.recv(), 5 * MS) for _ in range(3)]
    assert all(isinstance(f, bytes) for f in frames)
    events = [msgpack.unpackb(f) for f in frames]
    assert [(e["topic"], e["seq"], e["data"]) for e in events] == [
        ("t", i + 1, {"i": i}) for i in range(3)
    ]


async def test_unknown_format_refused(live):
    """format=xml is a 400 before the upgrade."""
    url = live.url.replace("http", "ws") + "/ws?topic=t&format=xml"
    with pytest.raises(InvalidStatus) as info:
        async with connect(url):
            pass
    assert info.value.response.status_code == 400


async def test_client_reads_binary_feed(live):
    """WebSocketClient(binary=True) yields the same events as the JSON feed."""
    await publish(live.url, 5)
    client = WebSocketClient(live.url, "t", since=0, binary=True)
    items = client.events()
    got = [await asyncio.wait_for(anext(items), 5 * MS) for _ in range(5)]
    await items.aclose()
    assert [i.event.seq for i in got if isinstance(i, Received)] == [1, 2, 3, 4, 5]
    assert got[0].event.data == {"i": 0}


async def test_encoded_once_per_event_not_per_subscriber(serve, settings, monkeypatch):
    """Three binary subscribers, five events: MessagePack encoding runs five times, not 15."""
    calls = []
    real = msgpack.packb

    def counting(obj, **kwargs):
        calls.append(obj["seq"])
        return real(obj, **kwargs)

    monkeypatch.setattr(msgpack, "packb", counting)
    broker = MemoryBroker(settings.history)
    server = serve(settings, broker=broker)
    url = server.url.replace("http", "ws") + "/ws?topic=t&format=msgpack"
    async with connect(url) as a, connect(url) as b, connect(url) as c:
        for ws in (a, b, c):
            await ws.recv()
        await publish(server.url, 5)
        frames = [[await ws.recv() for _ in range(5)] for ws in (a, b, c)]
    assert frames[0] == frames[1] == frames[2]
    assert sorted(calls) == [1, 2, 3, 4, 5]
    event = (await broker.read("t", 0, 10)).events[0]
    assert event.packed == frames[0][0]
