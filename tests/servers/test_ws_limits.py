"""WebSocket limits and abuse: size, UTF-8, garbage, schema, rate, per-IP cap — real frames."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from feed.settings import SSE_IMPLS
from tests.servers.rawws import OP_BINARY, OP_CLOSE, OP_TEXT, RawWS
from tests.support import MS, async_wait_until


def ws_url(server, query: str = "topic=t") -> str:
    return server.url.replace("http", "ws") + "/ws?" + query


async def closed_with(ws, timeout: float = 5.0) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), timeout * MS)
    assert info.value.rcvd is not None, "no close frame from the server"
    return info.value.rcvd.code, info.value.rcvd.reason


async def test_oversized_frame_closes_1009(live):
    """A text frame over ws_max_message_bytes is closed with 1009 by the server."""
    async with connect(ws_url(live)) as ws:
        await ws.recv()
        await ws.send("x" * (live.settings.ws_max_message_bytes + 1))
        code, _ = await closed_with(ws)
    assert code == 1009


async def test_frame_at_the_limit_is_accepted(live):
    """A frame of exactly the limit is read (and answered as bad JSON, not closed)."""
    async with connect(ws_url(live)) as ws:
        await ws.recv()
        await ws.send("x" * live.settings.ws_max_message_bytes)
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5 * MS))
    assert reply["error"] == "invalid_json"


async def test_invalid_utf8_text_frame_closes_1007(live):
    """A text frame that is not UTF-8 (sent raw: libraries refuse to) gets close 1007."""
    raw = await RawWS.connect(live.port, "/ws?topic=t")
    assert raw.status == 101
    await raw.recv()  # ready
    raw.send(OP_TEXT, b'{"type":"ping","id":"\xff\xfe"}')
    assert await raw.close_code(5 * MS) == 1007
    raw.abort()


async def test_unmasked_or_reserved_bits_close_1002(live):
    """A frame with RSV1 set and no extension negotiated is a protocol error (1002)."""
    raw = await RawWS.connect(live.port, "/ws?topic=t")
    await raw.recv()
    raw.send(OP_TEXT, b"{}", rsv1=True)
    assert await raw.close_code(5 * MS) == 1002
    raw.abort()


async def test_bad_frames_get_error_frames_and_the_socket_stays_up(live):
    """Malformed JSON, unknown types, schema violations and binary frames each get an error."""
    async with connect(ws_url(live)) as ws:
        await ws.recv()
        cases = {
            "{not json": "invalid_json",
            '{"type":"subscribe"}': "unknown_message",
            '{"type":"publish"}': "invalid_message",
            '{"type":"ping","id":{"a":1}}': "invalid_message",
            b"\x00\x01": "unsupported",
        }
        for frame, code in cases.items():
            await ws.send(frame)
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5 * MS))
            assert (reply["type"], reply["error"]) == ("error", code), frame
        detail = None
        await ws.send('{"type":"publish"}')
        detail = orjson.loads(await ws.recv())["detail"]
        assert detail[0]["loc"] == ["publish", "data"]
        await ws.send('{"type":"ping","id":9}')
        assert orjson.loads(await ws.recv()) == {"type": "pong", "id": 9}


async def test_repeated_garbage_closes_1008(live):
    """The ws_max_bad_messages-th bad frame closes the socket with 1008."""
    limit = live.settings.ws_max_bad_messages
    async with connect(ws_url(live)) as ws:
        await ws.recv()
        for _ in range(limit - 1):
            await ws.send("garbage")
            assert '"error"' in await asyncio.wait_for(ws.recv(), 5 * MS)
        await ws.send("garbage")
        code, reason = await closed_with(ws)
    assert (code, reason) == (1008, "too many bad messages")


async def test_rate_limit_error_frame_then_4029(serve, settings):
    """Past the bucket a frame is dropped with one rate_limited error; a flood closes 4029."""
    server = serve(settings.replace(ws_rate_per_s=2, ws_rate_burst=5))
    async with connect(ws_url(server)) as ws:
        await ws.recv()
        for i in range(5):  # the burst is served
            await ws.send(f'{{"type":"ping","id":{i}}}')
        for i in range(5):
            assert orjson.loads(await ws.recv()) == {"type": "pong", "id": i}
        for i in range(20):
            await ws.send(f'{{"type":"ping","id":{100 + i}}}')
        first = orjson.loads(await asyncio.wait_for(ws.recv(), 5 * MS))
        assert first["error"] == "rate_limited"
        code, reason = await closed_with(ws)
    assert (code, reason) == (4029, "rate limit exceeded")


async def test_paced_client_is_not_limited(serve, settings):
    """A client within its rate is never limited."""
    server = serve(settings.replace(ws_rate_per_s=50, ws_rate_burst=2))
    async with connect(ws_url(server)) as ws:
        await ws.recv()
        for i in range(10):
            await ws.send(f'{{"type":"ping","id":{i}}}')
            assert orjson.loads(await ws.recv()) == {"type": "pong", "id": i}
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("sse_impl", SSE_IMPLS)
async def test_per_ip_cap_refuses_with_429(serve, settings):
    """Past max_conns_per_ip, WS, SSE and long-poll get 429 before any upgrade or stream."""
    server = serve(settings.replace(max_conns_per_ip=2))
    a = await connect(ws_url(server))
    b = await connect(ws_url(server))
    try:
        with pytest.raises(InvalidStatus) as info:
            async with connect(ws_url(server)):
                pass
        assert info.value.response.status_code == 429
        async with httpx.AsyncClient(trust_env=False, base_url=server.url) as http:
            r = await http.get("/sse", params={"topic": "t"})
            assert r.status_code == 429 and r.json()["error"] == "too_many_connections"
            r = await http.get("/long-poll", params={"topic": "t", "timeout": "0.1"})
            assert r.status_code == 429
            r = await http.get("/poll", params={"topic": "t"})
            assert r.status_code == 200  # a short poll holds nothing
        await a.close()

        async def slot_free() -> bool:
            async with httpx.AsyncClient(trust_env=False) as http:
                health = (await http.get(f"{server.url}/healthz")).json()
            return bool(health["connections"].get("ws", 0) == 1)

        await async_wait_until(slot_free, 5, "slot freed")
        async with connect(ws_url(server)) as c:
            assert '"ready"' in await c.recv()
    finally:
        await a.close()
        await b.close()


async def test_close_frame_from_client_is_logged_with_its_code(live, caplog):
    """A client's close code reaches the disconnect record."""
    caplog.set_level("INFO", logger="pushlab.conn")
    raw = await RawWS.connect(live.port, "/ws?topic=t")
    await raw.recv()
    raw.send(OP_CLOSE, (4000).to_bytes(2, "big") + b"bye")
    assert await raw.close_code(5 * MS) == 4000
    raw.abort()

    def logged() -> bool:
        return any(getattr(r, "pushlab", {}).get("event") == "disconnect" for r in caplog.records)

    await async_wait_until(logged, 5, "disconnect record")
    record = next(r for r in caplog.records if r.pushlab.get("event") == "disconnect")
    assert record.pushlab["code"] == 4000


async def test_binary_raw_frame_is_refused_politely(live):
    """A binary frame gets an 'unsupported' error frame over the raw socket too."""
    raw = await RawWS.connect(live.port, "/ws?topic=t")
    await raw.recv()
    raw.send(OP_BINARY, b"\x01\x02")
    opcode, payload = await asyncio.wait_for(raw.recv(), 5 * MS)
    assert opcode == OP_TEXT and orjson.loads(payload)["error"] == "unsupported"
    raw.abort()
