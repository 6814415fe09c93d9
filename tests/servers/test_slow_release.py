"""A client that stops reading is released in the kernel's socket table, not only by the app."""

from __future__ import annotations

import asyncio
import logging
import socket

import httpx
import pytest

from feed.wire.http1 import sse_request, stream_request
from feed.wire.ws import CLOSE, close_payload, encode_frame
from tests.servers.rawws import RawWS
from tests.servers.socktable import open_fds, server_side
from tests.servers.test_heartbeat import flood
from tests.support import MS, async_wait_until, each_sse_impl


class Stalled:
    """A subscriber with a tiny receive buffer that reads nothing after the response head."""

    def __init__(self, sock: socket.socket, raw: RawWS | None = None) -> None:
        self.sock, self.raw = sock, raw
        self.port = sock.getsockname()[1]

    @classmethod
    async def open(cls, transport: str, port: int) -> Stalled:
        if transport == "ws":
            # asyncio's stream stops reading once its own 64 KiB buffer is full.
            raw = await RawWS.connect(port, "/ws?topic=t", rcvbuf=4096)
            assert raw.status == 101
            return cls(raw.writer.get_extra_info("socket"), raw)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        request = stream_request if transport == "stream" else sse_request
        sock.send(request("x", {"topic": "t"}))
        return cls(sock)

    async def read_all(self) -> bytes:
        if self.raw is not None:
            return await asyncio.wait_for(self.raw.reader.read(), 20 * MS)
        loop, data = asyncio.get_running_loop(), b""
        while chunk := await asyncio.wait_for(loop.sock_recv(self.sock, 65536), 20 * MS):
            data += chunk
        return data

    def close(self) -> None:
        if self.raw is not None:
            self.raw.abort()
        else:
            self.sock.close()


def slow_settings(settings, close_s: float = 0.2):
    return settings.replace(send_timeout_s=0.5, send_close_timeout_s=close_s, ws_ping_interval_s=0)


async def subscribed(url: str) -> bool:
    async with httpx.AsyncClient(trust_env=False) as http:
        return bool((await http.get(f"{url}/healthz")).json()["broker"]["subscribers"] == 1)


async def metric(url: str, line: str) -> bool:
    async with httpx.AsyncClient(trust_env=False) as http:
        return line in (await http.get(f"{url}/metrics")).text


def timeout_metric(transport: str) -> str:
    return f'pushlab_errors_total{{kind="send_timeout",transport="{transport}"}} 1.0'


@pytest.mark.abuse
@pytest.mark.parametrize(("transport", "sse_impl"), each_sse_impl(["ws", "sse", "stream"]))
async def test_stalled_reader_socket_is_released(serve, settings, caplog, transport):
    """After the send deadline the server's socket leaves the table (fd and queues freed)."""
    server = serve(slow_settings(settings))
    baseline = open_fds()
    client = await Stalled.open(transport, server.port)
    await async_wait_until(lambda: subscribed(server.url), 5, "subscribed")
    await flood(server.url)
    # Before the fix the entry stayed ESTABLISHED with megabytes queued, for ever.
    await async_wait_until(
        lambda: client.port not in server_side(server.port), 10, "server socket released"
    )
    await async_wait_until(lambda: open_fds() <= baseline + 1, 5, "server fd closed")
    assert await metric(server.url, timeout_metric(transport))
    if transport == "ws":
        assert await metric(server.url, 'pushlab_closes_total{code="1013",transport="ws"} 1.0')
    client.close()
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


@pytest.mark.abuse
@pytest.mark.parametrize(("transport", "sse_impl"), each_sse_impl(["ws", "sse", "stream"]))
async def test_reader_back_within_the_grace_gets_the_goodbye(serve, settings, transport):
    """A client that reads again soon after the drop finds 1013 / an end with the reason."""
    server = serve(slow_settings(settings, close_s=10 * MS))
    client = await Stalled.open(transport, server.port)
    await async_wait_until(lambda: subscribed(server.url), 5, "subscribed")
    await flood(server.url)
    await async_wait_until(lambda: metric(server.url, timeout_metric(transport)), 10, "timeout")
    tail = await client.read_all()
    client.close()
    if transport == "ws":
        # The close frame: FIN + opcode 8, length 14, code 1013, reason.
        assert tail.endswith(encode_frame(CLOSE, close_payload(1013, "send timeout"))), tail[-40:]
    elif transport == "stream":
        assert b'{"type":"end","reason":"send_timeout"}\n' in tail[-200:], tail[-200:]
        assert tail.endswith(b"0\r\n\r\n"), tail[-40:]
    else:
        assert b'data: {"type":"end","reason":"send_timeout"}' in tail[-200:], tail[-200:]
        assert tail.endswith(b"0\r\n\r\n"), tail[-40:]


@pytest.mark.abuse
async def test_stalled_reader_past_the_heartbeat_is_released(serve, settings):
    """A missed pong (1011) from a peer that stopped reading also frees its socket."""
    server = serve(
        settings.replace(
            ws_ping_interval_s=0.2,
            ws_ping_timeout_s=0.3,
            send_timeout_s=60,
            send_close_timeout_s=0.2,
        )
    )
    client = await Stalled.open("ws", server.port)
    await async_wait_until(lambda: subscribed(server.url), 5, "subscribed")
    await flood(server.url)
    await async_wait_until(
        lambda: client.port not in server_side(server.port), 10, "server socket released"
    )
    assert await metric(server.url, 'pushlab_closes_total{code="1011",transport="ws"} 1.0')
    client.close()
