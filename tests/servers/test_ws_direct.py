"""Direct delivery (servers/fastpath/ws_direct.py) on real servers and sockets: when safe, in order.

``pushlab_events_direct_total`` counts the events the publisher wrote to the socket itself; every
test checks it against what the path should have been, and that the client saw each seq once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json

import httpx
import msgpack
import pytest
from websockets.asyncio.client import connect

from feed.codec import encode_event
from servers.cli import add_arguments, settings_from_args
from servers.connections import Conn
from servers.fastpath.ws_direct import direct_sink
from tests.servers.rawws import OP_BINARY, OP_CLOSE, OP_TEXT, RawWS
from tests.servers.test_heartbeat import flood
from tests.servers.test_metrics import scrape
from tests.servers.test_websocket import LoopBroker
from tests.support import MS, async_wait_until

WS = (("transport", "ws"),)


async def counts(url: str) -> tuple[float, float]:
    """(events sent, of which direct) for the ws transport, open connections included."""
    m = await scrape(url)
    return m.get(("pushlab_events_sent_total", WS), 0.0), m.get(
        ("pushlab_events_direct_total", WS), 0.0
    )


async def publish(url: str, n: int, size: int = 0) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        for i in range(n):
            await http.post(f"{url}/publish", params={"topic": "t"}, json={"i": i, "p": "x" * size})


def ws_url(server, query: str = "") -> str:
    return server.url.replace("http", "ws") + "/ws?topic=t" + query


@pytest.mark.parametrize("impl", ["pushlab-sansio", "websockets-sansio", "wsproto"])
@pytest.mark.parametrize("direct", [True, False])
async def test_events_in_order_and_direct_used_only_when_on(serve, settings, impl, direct):
    """Live events arrive once each, in order; the publisher writes them only with ws_direct."""
    server = serve(settings.replace(ws_impl=impl, ws_direct=direct))
    async with connect(ws_url(server)) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        await publish(server.url, 30)
        seqs = [json.loads(await asyncio.wait_for(ws.recv(), 5 * MS))["seq"] for _ in range(30)]
        sent, direct_n = await counts(server.url)
    assert seqs == list(range(1, 31))
    assert sent == 30
    if direct:
        assert direct_n > 0
    else:
        assert direct_n == 0


async def test_msgpack_frames_go_direct(serve, settings):
    """Binary MessagePack frames are written directly too, and decode to the events."""
    server = serve(settings)
    async with connect(ws_url(server, "&format=msgpack")) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        await publish(server.url, 10)
        frames = [await asyncio.wait_for(ws.recv(), 5 * MS) for _ in range(10)]
        sent, direct_n = await counts(server.url)
    assert all(isinstance(f, bytes) for f in frames)
    assert [msgpack.unpackb(f)["seq"] for f in frames] == list(range(1, 11))
    assert sent == 10 and direct_n > 0


async def test_burst_reaches_a_reading_client_without_overflow(serve, settings):
    """A burst past subscriber_buffer with no await point goes straight to the socket.

    The buffered path closes such a subscriber with 1013 (test_slow_consumer_closed_1013, run
    with ws_direct off); here the client keeps up, so nothing is behind and nothing is closed.
    """
    broker = LoopBroker(settings.history)
    server = serve(settings.replace(subscriber_buffer=5), broker=broker)

    async def burst() -> None:
        t = broker._topic("t")
        for i in range(50):
            broker.append(t, encode_event("t", t.history.last_seq + 1, 0, i))

    async with connect(ws_url(server)) as ws:
        await ws.recv()
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(burst(), broker.loop))
        seqs = [json.loads(await asyncio.wait_for(ws.recv(), 5 * MS))["seq"] for _ in range(50)]
        assert (await counts(server.url)) == (50, 50)
    assert seqs == list(range(1, 51))


async def read_events(raw: RawWS, n: int) -> list[int]:
    """The seqs of the next ``n`` event frames (control frames skipped)."""
    seqs: list[int] = []
    while len(seqs) < n:
        opcode, payload = await asyncio.wait_for(raw.recv(), 10 * MS)
        assert opcode == OP_TEXT, (opcode, payload[:80])
        msg = json.loads(payload)
        if "type" not in msg:
            seqs.append(msg["seq"])
    return seqs


async def test_stalled_reader_goes_buffered_then_direct_again_in_order(serve, settings):
    """A reader that stops: the backlog takes the buffered path; after it catches up, direct.

    Seqs stay contiguous across both switches (direct -> buffered -> direct).
    """
    server = serve(
        settings.replace(
            subscriber_buffer=10_000, send_timeout_s=60, ws_ping_interval_s=0, history=1_000
        )
    )
    raw = await RawWS.connect(server.port, "/ws?topic=t", rcvbuf=4096)
    assert raw.status == 101
    await read_events(raw, 0)
    await publish(server.url, 5)
    first = await read_events(raw, 5)
    _, direct_before = await counts(server.url)
    assert direct_before > 0
    await flood(server.url)  # ~8 MB while not reading: kernel buffers and uvicorn's fill up
    sent, direct_mid = await counts(server.url)
    assert direct_mid - direct_before < 140, "a stalled socket must decline direct writes"
    backlog = await read_events(raw, 140)
    await async_wait_until(lambda: _all_counted(server.url, 145), 5, "backlog written")
    _, direct_after_backlog = await counts(server.url)
    await publish(server.url, 20)
    tail = await read_events(raw, 20)
    sent, direct_end = await counts(server.url)
    raw.abort()
    assert first + backlog + tail == list(range(1, 166))
    assert sent == 165
    assert direct_end > direct_after_backlog, "direct delivery did not resume"


async def _all_counted(url: str, n: int) -> bool:
    return (await counts(url))[0] == n


async def test_stalled_reader_still_closed_1013_with_direct_on(serve, settings):
    """Overflow still applies: a reader that stopped falls subscriber_buffer behind, gets 1013.

    What it received before the close is a contiguous prefix of the feed.
    """
    server = serve(settings.replace(subscriber_buffer=20, ws_ping_interval_s=0, send_timeout_s=30))
    raw = await RawWS.connect(server.port, "/ws?topic=t", rcvbuf=4096)
    await read_events(raw, 0)
    await publish(server.url, 3)
    assert await read_events(raw, 3) == [1, 2, 3]
    await flood(server.url)
    seqs: list[int] = []
    code = None
    async with asyncio.timeout(10 * MS):
        while code is None:
            opcode, payload = await raw.recv()
            if opcode == OP_CLOSE:
                code = int.from_bytes(payload[:2], "big")
            elif opcode == OP_TEXT and b'"type"' not in payload[:20]:
                seqs.append(json.loads(payload)["seq"])
    raw.abort()
    assert code == 1013
    assert seqs == list(range(4, 4 + len(seqs))) and len(seqs) < 140


@pytest.mark.parametrize("impl", ["pushlab-sansio", "websockets-sansio", "wsproto"])
async def test_compression_negotiated_means_no_direct_writes(serve, settings, impl):
    """With permessage-deflate agreed, every frame goes through the compressor; events intact."""
    server = serve(settings.replace(ws_compression=True, ws_impl=impl))
    async with connect(ws_url(server), compression="deflate") as ws:
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        await ws.recv()
        await publish(server.url, 10, size=200)
        events = [json.loads(await asyncio.wait_for(ws.recv(), 5 * MS)) for _ in range(10)]
        sent, direct_n = await counts(server.url)
    assert [e["data"]["i"] for e in events] == list(range(10))
    assert sent == 10 and direct_n == 0


async def test_compression_offered_but_not_taken_goes_direct(serve, settings):
    """websockets-sansio: the server allows deflate but this client does not ask: direct."""
    server = serve(settings.replace(ws_compression=True))
    async with connect(ws_url(server), compression=None) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await ws.recv()
        await publish(server.url, 10)
        seqs = [json.loads(await asyncio.wait_for(ws.recv(), 5 * MS))["seq"] for _ in range(10)]
        sent, direct_n = await counts(server.url)
    assert seqs == list(range(1, 11)) and sent == 10 and direct_n > 0


async def test_heartbeat_pings_interleave_with_direct_events(serve, settings):
    """Pings, pongs and direct event frames share the socket: every frame parses, none lost."""
    server = serve(settings.replace(ws_ping_interval_s=0.05, ws_ping_timeout_s=2))
    n = 150
    async with connect(ws_url(server)) as ws:
        await ws.recv()
        publishing = asyncio.ensure_future(_publish_paced(server.url, n))
        seqs, pings = [], 0
        try:
            while len(seqs) < n:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 5 * MS))
                if msg.get("type") == "ping":
                    pings += 1
                    await ws.send(json.dumps({"type": "pong", "id": msg["id"]}))
                else:
                    assert "type" not in msg, msg
                    seqs.append(msg["seq"])
        finally:
            await publishing
        sent, direct_n = await counts(server.url)
        rtt = (await scrape(server.url))[("pushlab_ping_rtt_seconds_count", ())]
    assert seqs == list(range(1, n + 1))
    assert pings >= 3 and rtt >= 2
    assert sent == n and direct_n > 0


async def _publish_paced(url: str, n: int) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        for i in range(n):
            await http.post(f"{url}/publish", params={"topic": "t"}, json=i)
            if i % 10 == 9:
                await asyncio.sleep(0.01)


async def test_binary_direct_frames_and_control_frames_do_not_mix_opcodes(serve, settings):
    """msgpack feed: events are binary frames, pings text frames, on one raw socket."""
    server = serve(settings.replace(ws_ping_interval_s=0.05, ws_ping_timeout_s=2))
    raw = await RawWS.connect(server.port, "/ws?topic=t&format=msgpack")
    opcode, payload = await raw.recv()
    assert opcode == OP_TEXT and json.loads(payload)["type"] == "ready"
    await publish(server.url, 20)
    seqs, pings = [], 0
    while len(seqs) < 20 or pings == 0:
        opcode, payload = await asyncio.wait_for(raw.recv(), 5 * MS)
        if opcode == OP_BINARY:
            seqs.append(msgpack.unpackb(payload)["seq"])
        else:
            assert opcode == OP_TEXT and json.loads(payload)["type"] == "ping"
            pings += 1
    _, direct_n = await counts(server.url)
    raw.abort()
    assert seqs == list(range(1, 21)) and direct_n > 0


def test_ws_direct_setting_from_env_flag_and_in_metadata(monkeypatch):
    """PUSHLAB_WS_DIRECT and --ws-direct/--no-ws-direct set it; result metadata records it."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert settings_from_args(parser.parse_args([])).ws_direct is True
    monkeypatch.setenv("PUSHLAB_WS_DIRECT", "0")
    off = settings_from_args(parser.parse_args([]))
    assert off.ws_direct is False and off.as_dict()["ws_direct"] is False
    assert settings_from_args(parser.parse_args(["--ws-direct"])).ws_direct is True
    monkeypatch.setenv("PUSHLAB_WS_DIRECT", "maybe")
    with pytest.raises(ValueError, match="PUSHLAB_WS_DIRECT"):
        settings_from_args(parser.parse_args(["--no-ws-direct"]))


@pytest.mark.parametrize(("direct", "per_socket"), [(True, 1), (False, 2)])
async def test_an_idle_feed_socket_runs_one_task(serve, settings, direct, per_socket):
    """Idle with direct delivery: only the endpoint's task (it reads); without: a writer too."""
    broker = LoopBroker(settings.history)
    server = serve(settings.replace(ws_direct=direct), broker=broker)

    async def all_tasks() -> int:
        return len(asyncio.all_tasks())

    def tasks() -> int:
        return asyncio.run_coroutine_threadsafe(all_tasks(), broker.loop).result(5 * MS)

    base = tasks()
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(connect(ws_url(server))) for _ in range(10)]
        for ws in sockets:
            await ws.recv()
        await async_wait_until(lambda: tasks() == base + 10 * per_socket, 5, "idle sockets")
        await publish(server.url, 3)
        for ws in sockets:
            assert [json.loads(await ws.recv())["seq"] for _ in range(3)] == [1, 2, 3]
        await async_wait_until(lambda: tasks() == base + 10 * per_socket, 5, "idle again")


class _Seen:
    """A plain ASGI middleware that records the (type, path) of what it was given."""

    seen: list[tuple[str, str]] = []

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        _Seen.seen.append((scope["type"], scope.get("path", "")))
        await self.app(scope, receive, send)


async def test_feed_goes_through_any_other_middleware(serve, settings):
    """/ws skips the middleware stack only while RawSend is alone in it (servers.fastpath.bare)."""
    _Seen.seen = []
    server = serve(settings, customize=lambda app: app.add_middleware(_Seen))
    async with connect(ws_url(server)) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        await publish(server.url, 2)
        assert [json.loads(await ws.recv())["seq"] for _ in range(2)] == [1, 2]
        _, direct_n = await counts(server.url)
    assert ("websocket", "/ws") in _Seen.seen
    assert direct_n == 2  # RawSend still hands uvicorn's own send to the session


def test_a_send_of_an_unknown_server_gets_no_sink():
    """Only uvicorn's own protocol objects are written to; anything else keeps the ASGI path."""

    class OtherServer:
        transport = None

        async def send(self, message: dict) -> None:
            """A look-alike: a bound send with a transport, not a protocol known safe."""

    async def wrapped(message: dict) -> None:
        """What a middleware that wraps send hands on."""

    conn = Conn("1", "ws", "127.0.0.1:1", "127.0.0.1")
    assert direct_sink(OtherServer().send, conn, False) is None
    assert direct_sink(wrapped, conn, False) is None
    assert direct_sink(print, conn, True) is None
