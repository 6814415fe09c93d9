"""permessage-deflate as a setting, with the size cap applied after decompression."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support import MS


def ws_url(server) -> str:
    return server.url.replace("http", "ws") + "/ws?topic=t&since=0"


async def test_deflate_negotiated_only_when_on(serve, settings):
    """The extension is agreed when the setting is on, and refused when it is off (default)."""
    on = serve(settings.replace(ws_compression=True))
    off = serve(settings)
    async with connect(ws_url(on), compression="deflate") as ws:
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
    async with connect(ws_url(off), compression="deflate") as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers


async def test_compressed_feed_is_delivered_intact(serve, settings):
    """Events arrive byte-identical through deflate."""
    server = serve(settings.replace(ws_compression=True))
    async with httpx.AsyncClient(trust_env=False) as http:
        for i in range(20):
            await http.post(f"{server.url}/publish", params={"topic": "t"}, json={"i": i})
    async with connect(ws_url(server), compression="deflate") as ws:
        assert '"ready"' in await ws.recv()
        for i in range(20):
            assert f'"data":{{"i":{i}}}' in await ws.recv()


async def test_decompression_bomb_closes_1009(serve, settings):
    """A small compressed frame that inflates past the max size is closed 1009, not inflated."""
    server = serve(settings.replace(ws_compression=True))
    bomb = "0" * (4 * 1024 * 1024)  # deflates to a few KiB; 64x the 64 KiB limit
    async with connect(ws_url(server), compression="deflate", max_size=None) as ws:
        await ws.recv()
        await ws.send(bomb)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 5 * MS)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    # The server is fine afterwards.
    async with httpx.AsyncClient(trust_env=False) as http:
        assert (await http.get(f"{server.url}/healthz")).status_code == 200
