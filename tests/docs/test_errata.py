"""Evidence for the errata in docs/interview-prep.md: each test proves one seed claim wrong."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from clients import ShortPollClient
from clients.explain import h2ws, handshake
from clients.explain.handshake import open_ws, ws_target
from experiments.front import access_lines, running_front
from feed.memory import MemoryBroker
from feed.wire.http1 import END_OF_HEAD, request_head
from feed.wire.ws import RFC6455_SAMPLE_ACCEPT, RFC6455_SAMPLE_KEY, TEXT, FrameReader, encode_frame
from servers.launch import ServerThread
from tests.docs.nodejs import node_script
from tests.support import async_wait_until, free_port, require, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


async def test_e1_http_keep_alive_reuses_one_connection(live):
    """E1: twenty polls from one client cost one TCP connection, not twenty (Q1, Q45)."""
    client = ShortPollClient(live.url, "ka", interval_s=0.0)
    gen = client.events()
    task = asyncio.ensure_future(anext(gen))
    await async_wait_until(lambda: client.counters.requests >= 20, 10, "20 polls")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await gen.aclose()
    assert client.counters.requests >= 20
    assert client.counters.connections == 1


def test_e2_sec_websocket_key_is_not_a_secret(live):
    """E2: the public RFC sample key is accepted twice; a malformed key is only a 400 (Q2)."""
    for _ in range(2):
        wire, report = open_ws(live.url, ws_target("k"), key=RFC6455_SAMPLE_KEY)
        wire.close()
        assert (report["status"], report["server_accept"]) == (101, RFC6455_SAMPLE_ACCEPT)
    wire, report = open_ws(live.url, ws_target("k"), key="not-16-bytes")
    wire.close()
    assert report["status"] == 400


def test_e4_server_rejects_unmasked_client_frames(live):
    """E4: an unmasked client frame is a protocol error: the server closes with 1002 (Q7)."""
    wire, report = open_ws(live.url, ws_target("m"))
    reader = FrameReader()
    with wire:
        assert report["status"] == 101
        assert wire.read_frames(reader, 1, 5)[0].kind == "text"  # ready
        wire.send(encode_frame(TEXT, b'{"type":"ping","id":1}'))  # no mask_key: unmasked
        frames = wire.read_frames(reader, 1, 5)
    assert [(f.kind, f.close_code) for f in frames] == [("close", 1002)]


async def test_e10_no_sticky_session_needed_when_state_is_shared(serve, settings, http_client):
    """E10: a WebSocket reconnecting to ANOTHER node resumes losslessly via a shared broker."""
    broker = MemoryBroker(settings.history, settings.max_topics)
    node_a, node_b = serve(settings, broker=broker), serve(settings, broker=broker)
    ws_a = node_a.url.replace("http", "ws")
    ws_b = node_b.url.replace("http", "ws")
    seen: list[int] = []
    async with connect(f"{ws_a}/ws?topic=s&since=0") as ws:
        assert orjson.loads(await ws.recv())["type"] == "ready"
        await publish(http_client, node_a.url, 5)
        while len(seen) < 5:
            seen.append(orjson.loads(await ws.recv())["seq"])
    await publish(http_client, node_b.url, 5)  # published while the client is away
    async with connect(f"{ws_b}/ws?topic=s&since={seen[-1]}") as ws:
        assert orjson.loads(await ws.recv())["type"] == "ready"
        while len(seen) < 10:
            seen.append(orjson.loads(await ws.recv())["seq"])
    assert seen == list(range(1, 11))


async def publish(http: httpx.AsyncClient, url: str, n: int) -> None:
    for i in range(n):
        r = await http.post(f"{url}/publish", params={"topic": "s"}, json={"i": i})
        assert r.status_code == 200


def test_e6_websocket_over_http2_rfc8441(settings):
    """E6: the lab's app under hypercorn serves a WebSocket over HTTP/2 (RFC 8441), no 101 (Q10)."""
    with ServerThread(settings, server="hypercorn") as server:
        report = h2ws.explain(topic="h2", port=server.port)
    assert report["enable_connect_protocol"] == 1
    request = dict(report["request_headers"])
    assert (request[":method"], request[":protocol"]) == ("CONNECT", "websocket")
    response = dict(report["response_headers"])
    assert report["status"] == 200
    assert not any(k.startswith("sec-websocket") for k in response)
    assert all(f["masked"] for f in report["sent"])
    texts = [orjson.loads(f["text"]) for f in report["frames"]]
    assert not any(f["masked"] for f in report["frames"])
    assert texts == [{"type": "ready", "topic": "h2", "cursor": 0}, {"type": "pong", "id": 7}]


@pytest.fixture
def socketio_server() -> Iterator[tuple[str, list[Any]]]:
    """A python-socketio server (the Socket.IO protocol) under uvicorn; echoes 'message' events."""
    import socketio

    sio = socketio.AsyncServer(async_mode="asgi")
    received: list[Any] = []

    @sio.on("message")
    async def echo(sid: str, data: Any) -> None:
        received.append(data)
        await sio.send(f"echo {data}", to=sid)

    sock = socket.socket()  # bound before uvicorn starts: no race for the port
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    # log_config=None: uvicorn's default dictConfig would bind its handlers to this test's
    # captured stderr, and later tests' servers would log to that closed file.
    config = uvicorn.Config(
        socketio.ASGIApp(sio), fd=sock.fileno(), log_level="critical", log_config=None
    )

    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="uvicorn")
    yield f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", received
    server.should_exit = True
    thread.join(10)
    sock.close()


async def test_e16_a_plain_websocket_client_cannot_talk_to_socketio(socketio_server):
    """E16: Socket.IO is a protocol on top: plain messages kill the link, its own framing works."""
    url, received = socketio_server
    async with connect(url) as ws:
        opening = await ws.recv()
        assert opening[0] == "0" and "pingInterval" in opening  # an Engine.IO "open" packet
        await ws.send("hello")  # what new WebSocket(url).send("hello") would do
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert received == []
    async with connect(url) as ws:
        await ws.recv()
        await ws.send("40")  # Socket.IO CONNECT to the default namespace
        assert (await ws.recv()).startswith("40{")
        await ws.send('42["message","hello"]')  # EVENT packet: the same text, framed
        assert await ws.recv() == '42["message","echo hello"]'
    assert received == ["hello"]


NODE_WS_DEFAULTS = """
const { WebSocketServer } = require('ws');
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 },
  () => console.log(wss.address().port));
wss.on('connection', ws => ws.on('error', () => {}));
"""


def test_e13_compression_defaults_differ(serve, settings):
    """E13: offered permessage-deflate, uvicorn's default accepts it, Node ws's default declines."""
    # uvicorn's own default (pushlab serve turns it off unless PUSHLAB_WS_COMPRESSION=1).
    server = serve(settings, uvicorn_options={"ws_per_message_deflate": True})
    ours = handshake.explain(server.url, deflate=True)
    assert ours["status"] == 101 and ours["extensions"].startswith("permessage-deflate")
    with node_script(NODE_WS_DEFAULTS) as node:
        theirs = handshake.explain(node.url, deflate=True)
    assert theirs["status"] == 101 and theirs["accept_ok"]
    assert theirs["extensions"] is None


NGINX_HTTP = """daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
{servers}
}}
"""


@contextlib.contextmanager
def nginx(tmp_path: Path, servers: str, port: int) -> Iterator[None]:
    """Debian's nginx with ``servers`` in its http block, until ``port`` answers."""
    binary = require("nginx", "the repo's proxy")
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_HTTP.format(prefix=tmp_path, servers=servers))
    proc = subprocess.Popen([binary, "-p", str(tmp_path), "-c", str(conf)])
    try:
        wait_until(lambda: listening(port) or proc.poll() is not None, 10, "nginx")
        assert proc.poll() is None, (tmp_path / "error.log").read_text()
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def test_e6_nginx_takes_no_websocket_over_http2(tmp_path):
    """E6: nginx's HTTP/2 never announces extended CONNECT, so the h2 explainer sends none."""
    port = free_port()
    h2c = f'server {{ listen 127.0.0.1:{port} http2; location / {{ return 200 "ok"; }} }}'
    with nginx(tmp_path, h2c, port):
        report = h2ws.talk(port, "h2")
    assert report["enable_connect_protocol"] != 1
    assert report["error"] == h2ws.NO_EXTENDED_CONNECT
    assert "request_headers" not in report  # RFC 8441 §3: no :protocol without the setting


@pytest.mark.nginx
def test_e6_nginx_over_tls_h2_refuses_extended_connect(live, tmp_path):
    """E6: nginx's h2 over TLS (ALPN) omits the setting and answers an extended CONNECT with 400."""
    binary = require("nginx", "the repo's proxy")
    with running_front(tmp_path, [live.port], access_log=True, nginx=binary) as proxy:
        assert proxy.tls is not None
        polite = h2ws.talk(proxy.https_port, "h2", tls=proxy.tls.client_context())
        insisting = h2ws.talk(proxy.https_port, "h2", tls=proxy.tls.client_context(), insist=True)
        wait_until(lambda: bool(access_lines(proxy.access_log_path)), 5, "nginx's log line")
        (logged,) = access_lines(proxy.access_log_path)
    assert polite["alpn"] == "h2"
    # SETTINGS_ENABLE_CONNECT_PROTOCOL is 0x8: nginx's SETTINGS frame does not carry it.
    assert 0x8 not in polite["server_settings"] and polite["enable_connect_protocol"] != 1
    assert polite["error"] == h2ws.NO_EXTENDED_CONNECT and "request_headers" not in polite
    # Sent anyway (RFC 8441 §3 forbids it): refused, never proxied to the app.
    assert insisting["status"] == 400 and insisting["frames"] == []
    assert (logged.protocol, logged.method, logged.status) == ("HTTP/2.0", "CONNECT", 400)


def test_e25_ip_hash_sends_a_whole_slash_24_to_one_server(tmp_path):
    """E25 (Q23): nginx's ip_hash keys on 3 octets: 8 client IPs of one /24 share one server."""
    front, a, b, full = free_port(), free_port(), free_port(), free_port()
    servers = f"""
  server {{ listen 127.0.0.1:{a}; return 200 "a"; }}
  server {{ listen 127.0.0.1:{b}; return 200 "b"; }}
  upstream seed {{ ip_hash; server 127.0.0.1:{a}; server 127.0.0.1:{b}; }}
  upstream whole {{ hash $remote_addr; server 127.0.0.1:{a}; server 127.0.0.1:{b}; }}
  server {{ listen 127.0.0.1:{front}; location / {{ proxy_pass http://seed; }} }}
  server {{ listen 127.0.0.1:{full}; location / {{ proxy_pass http://whole; }} }}
"""
    clients = [f"127.0.0.{i}" for i in range(2, 10)]
    with nginx(tmp_path, servers, full):
        seed = {get_from(ip, front) for ip in clients}
        whole = {get_from(ip, full) for ip in clients}
    assert len(seed) == 1  # the seed's ip_hash: every client on one server
    assert whole == {"a", "b"}  # the full address as the key spreads the same clients


def get_from(source_ip: str, port: int) -> str:
    """The body of ``GET /`` sent from ``source_ip`` (any 127/8 address is local on Linux)."""
    with socket.socket() as s:
        s.bind((source_ip, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(request_head("GET", "/", "x", {"Connection": "close"}))
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.split(END_OF_HEAD, 1)[1].decode()


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
