"""Behaviour the interview answers point at that no other test shows on its own."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from clients.explain.handshake import open_ws, ws_target
from tests.support import FULL, async_wait_until, wait_until


def subscribers(url: str) -> int:
    with httpx.Client(trust_env=False) as http:
        return int(http.get(f"{url}/healthz").json()["broker"]["subscribers"])


def test_abrupt_disconnect_frees_the_subscription(live):
    """A client that drops TCP without a close frame is noticed and its subscription freed."""
    wire, report = open_ws(live.url, ws_target("gone"))
    assert report["status"] == 101
    wait_until(lambda: subscribers(live.url) == 1, 10, "the subscription")
    wire.close()  # FIN, no close frame
    wait_until(lambda: subscribers(live.url) == 0, 10, "the subscription to be freed")


async def test_broadcast_reaches_every_subscriber_with_the_same_bytes(live):
    """One publish fans out to every socket on the topic as an identical text frame."""
    ws_url = live.url.replace("http", "ws") + "/ws?topic=fan"
    sockets = [await connect(ws_url) for _ in range(5)]
    try:
        for ws in sockets:
            assert orjson.loads(await ws.recv())["type"] == "ready"
        async with httpx.AsyncClient(trust_env=False) as http:
            r = await http.post(f"{live.url}/publish", params={"topic": "fan"}, json={"x": 1})
            assert r.status_code == 200
        frames = await asyncio.gather(*(ws.recv() for ws in sockets))
        assert len(set(frames)) == 1
        assert orjson.loads(frames[0])["data"] == {"x": 1}
    finally:
        for ws in sockets:
            await ws.close()


async def test_malformed_messages_get_errors_then_1008(serve, settings):
    """Garbage gets an error frame and the socket stays up, until the limit closes it 1008."""
    server = serve(settings.replace(ws_max_bad_messages=3))
    async with connect(server.url.replace("http", "ws") + "/ws?topic=bad") as ws:
        assert orjson.loads(await ws.recv())["type"] == "ready"
        for bad in ("not json", '{"type": "nope"}'):
            await ws.send(bad)
            assert orjson.loads(await ws.recv())["type"] == "error"
        await ws.send(b"\x00binary")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1008


async def test_kick_closes_with_1012(serve, settings):
    """A server-side kick ends a live WebSocket with 1012: connections end by either side."""
    live = serve(settings.replace(admin=True))
    async with connect(live.url.replace("http", "ws") + "/ws?topic=kick") as ws:
        assert orjson.loads(await ws.recv())["type"] == "ready"
        await async_wait_until(lambda: subscribers(live.url) == 1, 10, "the subscription")
        async with httpx.AsyncClient(trust_env=False) as http:
            r = await http.post(f"{live.url}/admin/kick", params={"topic": "kick"})
            assert r.status_code == 200
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1012


@pytest.mark.slow
async def test_one_process_holds_many_connections_and_reaches_them_all(live):
    """One server process holds N open WebSockets (300; 2,000 with PUSHLAB_TEST_FULL=1) and one
    publish reaches every one of them."""
    n = 2000 if FULL else 300
    ws_url = live.url.replace("http", "ws") + "/ws?topic=many"
    sockets = []
    try:
        for _ in range(n):
            sockets.append(await connect(ws_url, compression=None))
        await async_wait_until(lambda: subscribers(live.url) == n, 30, f"{n} subscriptions")
        async with httpx.AsyncClient(trust_env=False) as http:
            r = await http.post(f"{live.url}/publish", params={"topic": "many"}, json={"x": 1})
            assert r.status_code == 200
        for ws in sockets:
            assert orjson.loads(await ws.recv())["type"] == "ready"
        frames = await asyncio.wait_for(asyncio.gather(*(ws.recv() for ws in sockets)), 30)
        assert {orjson.loads(f)["seq"] for f in frames} == {1}
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
