"""Heartbeats and dead-peer detection, with the detection time measured against the bound.

Server side: WebSocket app-level ping/pong (interval + timeout), SSE/long-poll disconnect and
send-timeout detection. Client side: a silent server is noticed by read timeout (SSE) or by the
client's own protocol pings (WebSocket).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from clients import RetryPolicy, SSEClient, WebSocketClient
from feed.settings import SSE_IMPLS
from feed.wire.http1 import (
    END_OF_HEAD,
    get_request,
    parse_request_head,
    response_head,
    sse_request,
)
from feed.wire.sse import retry_block
from feed.wire.ws import accept_key
from servers.timers.heartbeat import Beat, Heartbeats
from tests.servers.rawws import RawWS
from tests.support import MS, async_wait_until

INTERVAL, TIMEOUT = 0.3, 0.3
# Scheduling slack on a busy 2-core machine (load average 10 seen while developing): event-loop
# hiccups plus the /healthz polling. Without a heartbeat the detection time would be unbounded.
MARGIN = 0.5 * MS


@pytest.fixture
def hb(serve, settings):
    return serve(settings.replace(ws_ping_interval_s=INTERVAL, ws_ping_timeout_s=TIMEOUT))


async def stop(task: asyncio.Future, items) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await items.aclose()


async def flood(url: str) -> None:
    """Publish ~8 MB: past loopback's largest kernel send buffer (tcp_wmem max 4 MB here)."""
    async with httpx.AsyncClient(trust_env=False) as http:
        blob = "x" * 60_000
        for _ in range(140):
            await http.post(f"{url}/publish", params={"topic": "t"}, json=blob)


async def health(url: str) -> dict:
    async with httpx.AsyncClient(trust_env=False) as http:
        return dict((await http.get(f"{url}/healthz")).json())


async def wait_freed(url: str, transport: str, timeout: float = 10.0) -> float:
    """Wait until no subscriber and no live ``transport`` connection remain; returns the time."""

    async with httpx.AsyncClient(trust_env=False) as http:

        async def freed() -> bool:
            h = (await http.get(f"{url}/healthz")).json()
            return h["broker"]["subscribers"] == 0 and not h["connections"].get(transport)

        await async_wait_until(freed, timeout, f"{transport} resources freed")
        return time.monotonic()


async def test_silent_peer_is_dropped_within_interval_plus_timeout(hb):
    """A raw peer that completes the handshake and then never reads or answers is dropped."""
    raw = await RawWS.connect(hb.port, "/ws?topic=t")
    t0 = time.monotonic()
    assert raw.status == 101
    assert (await health(hb.url))["broker"]["subscribers"] == 1
    detected = await wait_freed(hb.url, "ws") - t0
    raw.abort()
    print(f"silent peer detected after {detected:.3f} s (bound {INTERVAL + TIMEOUT} s)")
    assert INTERVAL + TIMEOUT - 0.05 <= detected <= INTERVAL + TIMEOUT + MARGIN


async def test_peer_with_full_buffers_is_dropped_in_time(serve, settings):
    """A peer that stopped reading while the feed keeps writing to it is dropped in time (the
    goodbye's send_close_timeout_s included)."""
    server = serve(
        settings.replace(
            ws_ping_interval_s=INTERVAL,
            ws_ping_timeout_s=TIMEOUT,
            send_timeout_s=30,
            send_close_timeout_s=0.1,
        )
    )
    raw = await RawWS.connect(server.port, "/ws?topic=t", rcvbuf=4096)
    t0 = time.monotonic()
    # The feed keeps filling the stalled peer's buffers while the heartbeat runs its course.
    flooding = asyncio.ensure_future(flood(server.url))
    try:
        detected = await wait_freed(server.url, "ws") - t0
    finally:
        flooding.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await flooding
    raw.abort()
    print(f"stalled peer detected after {detected:.3f} s")
    assert detected <= INTERVAL + TIMEOUT + 0.1 + MARGIN


async def test_suppressed_pongs_close_1011(hb):
    """A client that reads but never answers the server's pings gets 1011 in time."""
    url = hb.url.replace("http", "ws") + "/ws?topic=t"
    async with connect(url, ping_interval=None) as ws:
        t0 = time.monotonic()
        pings = 0
        with pytest.raises(ConnectionClosed) as info:
            while True:
                msg = orjson.loads(await asyncio.wait_for(ws.recv(), 5 * MS))
                pings += msg.get("type") == "ping"
        detected = time.monotonic() - t0
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (1011, "heartbeat timeout")
    assert pings == 1
    assert INTERVAL + TIMEOUT - 0.05 <= detected <= INTERVAL + TIMEOUT + MARGIN


async def test_answering_client_stays_and_rtt_is_recorded(hb):
    """WebSocketClient answers pings: it outlives many intervals, and RTTs reach /metrics."""
    client = WebSocketClient(hb.url, "t", retry=RetryPolicy(max_attempts=0))
    items = client.events()
    task = asyncio.ensure_future(anext(items))
    await async_wait_until(lambda: client.server_pings >= 4, 10, "four server pings")
    assert not task.done()
    assert client.counters.connections == 1 and client.counters.reconnects == 0
    await stop(task, items)
    async with httpx.AsyncClient(trust_env=False) as http:
        text = (await http.get(f"{hb.url}/metrics")).text
    count = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("pushlab_ping_rtt_seconds_count")
    )
    assert count >= 3


async def test_stale_or_unsolicited_pongs_do_not_keep_a_peer_alive(hb):
    """Pongs with the wrong id are ignored: the peer is still dropped."""
    url = hb.url.replace("http", "ws") + "/ws?topic=t"
    async with connect(url, ping_interval=None) as ws:
        with pytest.raises(ConnectionClosed) as info:
            while True:
                msg = orjson.loads(await asyncio.wait_for(ws.recv(), 5 * MS))
                if msg.get("type") == "ping":
                    await ws.send(orjson.dumps({"type": "pong", "id": msg["id"] + 1}).decode())
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011


@pytest.mark.parametrize("sse_impl", SSE_IMPLS)
@pytest.mark.parametrize("how", ["close", "abort"])
async def test_sse_client_leaving_frees_at_once(live, how):
    """An SSE client that closes (FIN) or resets (RST) is noticed at once, not at keep-alive."""
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    writer.write(sse_request("x", {"topic": "t"}))
    await reader.readuntil(b"event: ready")
    assert (await health(live.url))["connections"] == {"sse": 1}
    t0 = time.monotonic()
    if how == "close":
        writer.close()
    else:
        writer.transport.abort()
    detected = await wait_freed(live.url, "sse") - t0
    assert detected <= 0.5 * MS


@pytest.mark.parametrize("how", ["close", "abort"])
async def test_long_poll_client_leaving_frees_at_once(live, how):
    """A long poll whose client leaves mid-wait is abandoned at once (not at its timeout)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    writer.write(get_request("x", "/long-poll?topic=t&timeout=25"))
    await async_wait_until(lambda: _connections(live.url, "long-poll", 1), 5, "long poll waiting")
    t0 = time.monotonic()
    if how == "close":
        writer.close()
    else:
        writer.transport.abort()
    detected = await wait_freed(live.url, "long-poll") - t0
    assert detected <= 0.5 * MS


async def _connections(url: str, transport: str, n: int) -> bool:
    return bool((await health(url))["connections"].get(transport) == n)


@pytest.mark.parametrize("sse_impl", SSE_IMPLS)
async def test_sse_send_timeout_drops_a_reader_that_stopped(serve, settings):
    """An SSE client that stops reading is dropped once a send stalls past send_timeout_s (and
    its goodbye has had send_close_timeout_s)."""
    server = serve(settings.replace(send_timeout_s=0.5, send_close_timeout_s=0.1))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(sse_request("x", {"topic": "t"}))
    await async_wait_until(lambda: _connections(server.url, "sse", 1), 5, "stream open")
    await flood(server.url)
    t0 = time.monotonic()
    detected = await wait_freed(server.url, "sse") - t0
    sock.close()
    assert detected <= 0.5 + 0.1 + MARGIN


async def _silent_server(handshake: bytes | None) -> tuple[asyncio.Server, list[float]]:
    """A server that answers the request head (or upgrade) and then says nothing at all."""
    accepted: list[float] = []
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(time.monotonic())
        writers.append(writer)
        head = parse_request_head(await reader.readuntil(END_OF_HEAD))
        if handshake is None:  # WebSocket: compute the accept key
            accept = accept_key(head.headers["sec-websocket-key"])
            fields = {"Upgrade": "websocket", "Connection": "Upgrade"}
            writer.write(
                response_head(101, "Switching Protocols", fields | {"Sec-WebSocket-Accept": accept})
            )
        else:
            writer.write(handshake)
        await reader.read()  # until the client gives up and closes

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    server.writers = writers  # type: ignore[attr-defined]
    return server, accepted


async def _shut(server: asyncio.Server) -> None:
    server.close()
    for w in server.writers:  # type: ignore[attr-defined]
        w.close()
    await asyncio.sleep(0.05)  # let the handlers see EOF and return


async def test_sse_client_detects_silent_server_by_read_timeout():
    """SSEClient reconnects after read_timeout_s of silence (a dead server or path)."""
    head = response_head(200, "OK", {"Content-Type": "text/event-stream"}) + retry_block(10)
    server, accepted = await _silent_server(head)
    port = server.sockets[0].getsockname()[1]
    client = SSEClient(f"http://127.0.0.1:{port}", "t", read_timeout_s=0.3, retry=RetryPolicy(0.01))
    items = client.events()
    task = asyncio.ensure_future(anext(items))
    try:
        await async_wait_until(lambda: len(accepted) >= 2, 10, "reconnect")
        detected = accepted[1] - accepted[0]
        assert "ReadTimeout" in client.counters.errors
        assert 0.3 - 0.05 <= detected <= 0.3 + MARGIN
    finally:
        await stop(task, items)
        await _shut(server)


async def test_ws_client_detects_silent_server_by_ping_timeout():
    """WebSocketClient's protocol pings notice a server that stopped answering."""
    server, accepted = await _silent_server(None)
    port = server.sockets[0].getsockname()[1]
    client = WebSocketClient(
        f"http://127.0.0.1:{port}",
        "t",
        ping_interval_s=0.2,
        ping_timeout_s=0.2,
        retry=RetryPolicy(0.01),
    )
    items = client.events()
    task = asyncio.ensure_future(anext(items))
    try:
        await async_wait_until(lambda: len(accepted) >= 2, 10, "reconnect")
        detected = accepted[1] - accepted[0]
        assert 0.4 - 0.05 <= detected <= 0.6 + MARGIN  # interval + timeout + close wait
    finally:
        await stop(task, items)
        await _shut(server)


class _Target:
    """A heartbeat target that records when it was pinged and found overdue."""

    def __init__(self, hb: Heartbeats, answer: bool, fail: bool = False) -> None:
        self.hb, self.answer, self.fail = hb, answer, fail
        self.pings: list[float] = []
        self.overdue: float | None = None
        self.beat: Beat | None = None

    def send_ping(self) -> None:
        self.pings.append(time.monotonic())
        if self.fail:
            raise RuntimeError("broken target")
        if self.answer:
            asyncio.get_running_loop().call_later(0.01, self.hb.answered, self.beat)

    def pong_overdue(self) -> None:
        self.overdue = time.monotonic()


async def test_one_timer_keeps_answering_targets_and_ends_silent_ones():
    """Ping an interval after each pong; no pong in time: overdue once; removed: nothing."""
    hb = Heartbeats(0.1, 0.15)
    talk = [_Target(hb, answer=True) for _ in range(3)]
    silent, gone, broken = _Target(hb, False), _Target(hb, True), _Target(hb, True, fail=True)
    t0 = time.monotonic()
    for t in (*talk, silent, gone, broken):
        t.beat = hb.add(t)
    Heartbeats.remove(gone.beat)  # type: ignore[arg-type]
    await async_wait_until(
        lambda: silent.overdue is not None and all(len(t.pings) >= 4 for t in talk), 5, "beats"
    )
    hb.close()
    assert 0.25 - 0.01 <= silent.overdue - t0 <= 0.25 + MARGIN  # type: ignore[operator]
    assert len(silent.pings) == 1 and gone.pings == [] and gone.overdue is None
    for t in talk:
        assert t.overdue is None
        gaps = [b - a for a, b in zip(t.pings, t.pings[1:], strict=False)]
        assert all(0.1 + 0.01 - 0.005 <= g <= 0.11 + MARGIN for g in gaps), gaps
    # A target whose ping raised is still judged by its deadline, and the others went on.
    assert len(broken.pings) == 1 and broken.overdue is not None
