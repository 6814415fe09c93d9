"""``WS /echo`` and ``POST /echo`` against a real server."""

from __future__ import annotations

import os

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support import MS

WS_IMPLS = ["pushlab-sansio", "websockets-sansio", "wsproto"]


@pytest.mark.parametrize("ws", WS_IMPLS)
async def test_text_binary_and_fragmented_come_back_unchanged(serve, settings, ws):
    """Text stays text, binary stays binary, a fragmented message comes back whole."""
    # ServerThread applies ws_max_message_bytes (64 KiB) like `pushlab serve`; 70 kB needs more.
    server = serve(settings.replace(ws_max_message_bytes=1 << 20, ws_impl=ws))
    async with connect(f"ws://127.0.0.1:{server.port}/echo", open_timeout=5 * MS) as sock:
        for message in ("héllo ✓", "", b"\x00\xff" * 1000, b"", os.urandom(70_000)):
            await sock.send(message)
            assert await sock.recv() == message
        await sock.send(["frag", "ment", "ed"])
        assert await sock.recv() == "fragmented"


@pytest.mark.parametrize("ws", WS_IMPLS)
async def test_message_over_max_size_closes_1009(serve, settings, ws):
    """A message over the server's ws_max_size is answered with close 1009."""
    server = serve(settings.replace(ws_impl=ws), uvicorn_options={"ws_max_size": 1024})
    async with connect(f"ws://127.0.0.1:{server.port}/echo", open_timeout=5 * MS) as sock:
        await sock.send(b"x" * 1024)
        assert await sock.recv() == b"x" * 1024
        await sock.send(b"x" * 1025)
        with pytest.raises(ConnectionClosed) as info:
            await sock.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_http_echo_returns_body_and_type(live):
    """POST /echo answers 200 with the body and content type it was given."""
    async with httpx.AsyncClient(base_url=live.url, trust_env=False) as http:
        body = os.urandom(5000)
        r = await http.post("/echo", content=body, headers={"content-type": "image/png"})
        assert (r.status_code, r.content, r.headers["content-type"]) == (200, body, "image/png")
        r = await http.post("/echo", content=b"")
        assert r.status_code == 200 and r.content == b""
        assert r.headers["content-type"] == "application/octet-stream"
        assert (await http.get("/echo")).status_code == 405
