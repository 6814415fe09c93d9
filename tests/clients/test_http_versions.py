"""Every transport delivers the published sequence over HTTP/1.1+TLS, HTTP/2+TLS and (the HTTP
transports) HTTP/3, resuming after a cut: the same clients (``http2=True``, ``http3=True``), real
uvicorn and hypercorn on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import pytest

from clients import CLIENTS, h2ws
from clients._http import make_http
from feed.exceptions import FatalTransportError
from feed.wire.contract import TRANSPORTS
from servers.launch import ServerThread
from tests.clients.test_delivery import FAST_RETRY, Collector, publish, ready
from tests.support import MS, async_wait_until

# Scheduling slack on a busy 2-core machine (as tests/servers/test_heartbeat.py).
MARGIN = 0.5 * MS

# proto: (http2, http3), for the server's settings and the client alike.
PROTOS = {"h1-tls": (False, False), "h2-tls": (True, False), "h3": (True, True)}
VERSION = {"h1-tls": "1.1", "h2-tls": "2", "h3": "3"}


class _Versions:
    """Records the HTTP version of each feed request (ASGI ``http_version``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"] not in ("/publish", "/healthz"):
            SEEN.add((scope["type"], scope["http_version"]))
            PEERS.add(scope["client"][1])
        await self.app(scope, receive, send)


SEEN: set[tuple[str, str]] = set()
PEERS: set[int] = set()  # client ports of the feed requests


@pytest.fixture
async def tls_http(tls_files) -> AsyncGenerator[httpx.AsyncClient, None]:
    """Publishes over HTTP/1.1 with the certificate checked (the control plane's client)."""
    async with httpx.AsyncClient(trust_env=False, verify=tls_files.client_context()) as client:
        yield client


def _server(serve, settings, tls_files, proto: str) -> ServerThread:
    http2, http3 = PROTOS[proto]
    tls = settings.replace(
        tls_cert=str(tls_files.cert), tls_key=str(tls_files.key), http2=http2, http3=http3
    )
    return serve(tls, customize=lambda app: app.add_middleware(_Versions))


def _client(transport: str, server: ServerThread, tls_files, proto: str) -> Any:
    extra: dict[str, Any] = {"interval_s": 0.02} if transport == "poll" else {}
    if transport == "long-poll":
        extra["wait_s"] = 2.0
    http2, http3 = PROTOS[proto]
    return CLIENTS[transport](
        server.url, "t", retry=FAST_RETRY, verify=tls_files.client_context(),
        http2=http2, http3=http3, **extra,
    )  # fmt: skip


# The transports of TRANSPORTS over each version (WebTransport is HTTP/3 on its own UDP port:
# docs/webtransport.md); no WebSocket over HTTP/3 (test_no_websocket_client_over_h3).
CASES = [(t, p) for p in sorted(PROTOS) for t in sorted(TRANSPORTS) if (t, p) != ("ws", "h3")]


@pytest.mark.parametrize(("transport", "proto"), CASES)
async def test_sequence_and_resume_over_tls(transport, proto, serve, settings, tls_files, tls_http):
    """In order, exactly once, across client-side cuts; each feed request on the version asked."""
    SEEN.clear()
    server = _server(serve, settings, tls_files, proto)
    c = Collector(_client(transport, server, tls_files, proto))
    await ready(c.client)
    for round_ in range(3):
        await publish(tls_http, server.url, "t", 30, start=30 * round_)
        await c.until(30 * round_ + 10)
        c.client.drop()
    await c.until(90)
    await c.close()
    assert c.seqs == list(range(1, 91))
    assert c.client.counters.connections >= 2
    assert c.client.counters.silent_gaps == 0
    kind = "websocket" if transport == "ws" else "http"
    assert SEEN == {(kind, VERSION[proto])}


def test_no_websocket_client_over_h3():
    """RFC 9220 has no client here (and no browser ships it): asking for it is a clear error."""
    with pytest.raises(ValueError, match="RFC 9220"):
        CLIENTS["ws"]("https://127.0.0.1:1", "t", http3=True)


async def test_publish_over_h2(serve, settings, tls_files):
    """A POST with a body answered over HTTP/2 (hypercorn): the publish route works on h2 too."""
    server = _server(serve, settings, tls_files, "h2-tls")
    async with httpx.AsyncClient(verify=tls_files.client_context(), http2=True) as http:
        for i in range(3):
            r = await http.post(f"{server.url}/publish", params={"topic": "t"}, json={"i": i})
            assert (r.status_code, r.http_version) == (200, "HTTP/2"), r.text
        r = await http.get(f"{server.url}/poll", params={"topic": "t", "since": "0"})
    assert [e["seq"] for e in r.json()["events"]] == [1, 2, 3]


async def test_second_bodiless_post_over_h2_drops_the_connection(serve, settings, tls_files):
    """Pins hypercorn 0.18: after a POST without a body that the app answers without reading
    the body (``/admin/ticker?rate=``), the next request on that h2 connection ends it instead
    of being answered. So the lab's control calls (the bench's ticker) go over HTTP/1.1. When
    this fails, hypercorn answers: drop the note in servers/http2.py."""
    server = _server(serve, settings.replace(admin=True, ticker_rate=1.0), tls_files, "h2-tls")
    async with httpx.AsyncClient(verify=tls_files.client_context(), http2=True) as http:
        first = await http.post(f"{server.url}/admin/ticker", params={"rate": "2"})
        assert (first.status_code, first.http_version) == (200, "HTTP/2"), first.text
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # the race decides
            await http.post(f"{server.url}/admin/ticker", params={"rate": "3"})
    async with httpx.AsyncClient(verify=tls_files.client_context()) as http:
        for rate in ("2", "3"):  # the same calls on one HTTP/1.1 connection: answered
            r = await http.post(f"{server.url}/admin/ticker", params={"rate": rate})
            assert (r.status_code, r.http_version) == (200, "HTTP/1.1"), r.text


@pytest.mark.parametrize("proto", ["h2-tls", "h3"])
@pytest.mark.parametrize("transport", ["poll", "long-poll", "sse", "stream"])
async def test_subscribers_share_one_connection(
    transport, proto, serve, settings, tls_files, tls_http
):
    """Given one shared httpx client, HTTP/2 and HTTP/3 subscribers are streams of one TCP or
    QUIC connection."""
    server = _server(serve, settings, tls_files, proto)
    PEERS.clear()
    extra = {"poll": {"interval_s": 0.02}, "long-poll": {"wait_s": 2.0}}.get(transport, {})
    http2, http3 = PROTOS[proto]
    async with make_http(10.0, tls_files.client_context(), http2, http3) as shared:
        subs = [
            Collector(
                CLIENTS[transport](
                    server.url,
                    "t",
                    retry=FAST_RETRY,
                    verify=tls_files.client_context(),
                    http2=http2,
                    http3=http3,
                    http=shared,
                    **extra,
                )  # fmt: skip
            )
            for _ in range(5)
        ]
        for c in subs:
            await ready(c.client)
        await publish(tls_http, server.url, "t", 20)
        for c in subs:
            await c.until(20)
            await c.close()
    assert all(c.seqs == list(range(1, 21)) for c in subs)
    assert len(PEERS) == 1


@pytest.mark.parametrize(("path", "status"), [("/nope", 403), ("/ws", 400)])
async def test_refused_h2_websocket_is_a_fatal_status(serve, settings, tls_files, path, status):
    """A 4xx answer to the extended CONNECT is fatal, as a 4xx to the HTTP/1.1 upgrade is."""
    server = _server(serve, settings, tls_files, "h2-tls")
    with pytest.raises(FatalTransportError) as caught:
        async with h2ws.connect(server.ws_url + path, ssl_context=tls_files.client_context()):
            pass
    assert caught.value.status == status


async def test_h2_websocket_policy_close_is_fatal(serve, settings, tls_files):
    """The server's policy close (1008: a missing token with auth on) ends the client for good."""
    server = _server(serve, settings.replace(auth=True), tls_files, "h2-tls")
    client = CLIENTS["ws"](
        server.url, "t", retry=FAST_RETRY, verify=tls_files.client_context(), http2=True,
        auth="message", token="not-a-jwt",
    )  # fmt: skip
    with pytest.raises(FatalTransportError) as caught:
        async for _ in client.events():
            pass
    assert caught.value.close_code == 1008


class _Relay:
    """A loopback TCP relay whose current connections can be frozen: bytes stop in both
    directions and the sockets stay open, as on a dead path (no FIN, no RST, no close_notify)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.accepted: list[float] = []
        self._frozen: list[asyncio.Event] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def freeze(self) -> None:
        for frozen in self._frozen:
            frozen.set()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(time.monotonic())
        frozen = asyncio.Event()
        self._frozen.append(frozen)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pump(src, dst, frozen))
            self._tasks.add(task)

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, frozen: asyncio.Event):
        while data := await src.read(65536):
            if frozen.is_set():
                await asyncio.Event().wait()  # held until close(): nothing passes any more
            dst.write(data)
            await dst.drain()
        if not frozen.is_set():
            dst.close()

    async def close(self) -> None:
        self.server.close()
        for task in self._tasks:
            task.cancel()
        for writer in self._writers:
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def test_h2_websocket_notices_a_dead_path_and_resumes(serve, settings, tls_files, tls_http):
    """Over HTTP/2 the WebSocket client pings after ``ping_interval_s`` of silence, gives up
    ``ping_timeout_s`` later, leaves the dead connection within ``close_timeout_s`` (asyncio's
    TLS close alone would wait 30 s for a close_notify) and resumes without a loss."""
    server = _server(serve, settings, tls_files, "h2-tls")
    relay = _Relay(server.port)
    port = await relay.start()
    interval = timeout = 0.2
    client = CLIENTS["ws"](
        f"https://127.0.0.1:{port}", "t", retry=FAST_RETRY, verify=tls_files.client_context(),
        http2=True, ping_interval_s=interval, ping_timeout_s=timeout,
    )  # fmt: skip
    c = Collector(client)
    try:
        await ready(client)
        await publish(tls_http, server.url, "t", 10)
        await c.until(10)
        relay.freeze()
        frozen_at = time.monotonic()
        await publish(tls_http, server.url, "t", 10, start=10)
        await async_wait_until(lambda: len(relay.accepted) >= 2, 10, "a new connection")
        detected = relay.accepted[1] - frozen_at
        await c.until(20)
    finally:
        await c.close()
        await relay.close()
    assert detected <= interval + timeout + timeout + MARGIN  # ping, no answer, bounded close
    assert "H2WebSocketError" in client.counters.errors
    assert c.seqs == list(range(1, 21))
    assert client.counters.silent_gaps == 0


async def test_h2_websocket_cancel_on_a_dead_path_is_bounded(serve, settings, tls_files):
    """Cancelling a client whose path died returns within the close timeout: nothing waits for
    a TLS close_notify that cannot come (the hang CPython issue 83939 describes)."""
    server = _server(serve, settings, tls_files, "h2-tls")
    relay = _Relay(server.port)
    port = await relay.start()
    client = CLIENTS["ws"](
        f"https://127.0.0.1:{port}", "t", retry=FAST_RETRY, verify=tls_files.client_context(),
        http2=True, ping_interval_s=None, ping_timeout_s=0.2,
    )  # fmt: skip
    c = Collector(client)
    try:
        await ready(client)
        relay.freeze()
        started = time.monotonic()
        await c.close()
        took = time.monotonic() - started
    finally:
        await relay.close()
    assert took <= 0.2 + MARGIN


def test_quic_handshakes_at_once_on_uvloop_all_complete(tls_files):
    """aioquic 1.7.2 records a completed handshake only when a waiter already exists; on uvloop,
    with ten handshakes at once to a server process, most completed before their waiting task
    first ran and then timed out (clients/_h3.py waits on its own future, set from the event)."""
    import uvloop

    from clients._h3 import connect
    from servers.launch import ServerProcess

    env = {"PUSHLAB_TLS_CERT": str(tls_files.cert), "PUSHLAB_TLS_KEY": str(tls_files.key)}
    env |= {"PUSHLAB_HTTP2": "1", "PUSHLAB_HTTP3": "1"}
    with ServerProcess(env=env) as server:

        async def one() -> None:
            conn = await connect(
                "127.0.0.1", server.port, verify=tls_files.client_context(), timeout_s=5.0
            )
            conn.shutdown()

        async def ten() -> None:
            await asyncio.gather(*(one() for _ in range(10)))

        uvloop.run(ten())


async def test_a_cancel_as_the_quic_handshake_completes_is_not_lost(
    serve, settings, tls_files, monkeypatch
):
    """The client being closed while it reconnects: cancelled in the loop turn its handshake
    completes, ``connect`` raises CancelledError and closes its UDP socket. (Python 3.11's
    ``wait_for`` returned the connection instead and the closed client went on reconnecting.)"""
    from aioquic.quic.events import HandshakeCompleted

    from clients import _h3

    server = _server(serve, settings, tls_files, "h3")
    task: asyncio.Task[Any] | None = None
    completed = _h3.H3Client.quic_event_received

    def cancel_on_completion(self: _h3.H3Client, event: Any) -> None:
        completed(self, event)
        if isinstance(event, HandshakeCompleted) and task is not None:
            task.cancel()

    monkeypatch.setattr(_h3.H3Client, "quic_event_received", cancel_on_completion)
    before = _h3.UDP.connections
    task = asyncio.ensure_future(
        _h3.connect("127.0.0.1", server.port, verify=tls_files.client_context(), timeout_s=5.0)
    )
    with pytest.raises(asyncio.CancelledError):
        await task
    await async_wait_until(lambda: _h3.UDP.connections == before, 5, "the UDP socket closed")
