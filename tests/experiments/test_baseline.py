"""The Node baseline speaks pushlab's contract: pushlab's own clients get the same guarantees."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncGenerator, Iterator

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from clients import LongPollClient, ShortPollClient, SSEClient, WebSocketClient, h2ws
from clients.base import FeedClient, Received
from clients.h3http import H3Transport
from experiments.baseline import NODE_DIR, NodeServer, node_available
from experiments.matrix import NOT_SUPPORTED
from experiments.tls import TLSFiles, make_tls
from feed.events import Gap
from feed.ticker import make_payload
from feed.wire.ws import TEXT, encode_frame, new_ws_key, upgrade_request
from tests.clients.test_delivery import FAST_RETRY, Collector, publish, ready
from tests.support import IN_CI, require

pytestmark = pytest.mark.load

CLIENTS = {
    "ws": WebSocketClient, "sse": SSEClient, "poll": ShortPollClient, "long-poll": LongPollClient
}  # fmt: skip
PUSHED = ("sse", "ws")


def node_server(rate: float = 0, size: int = 64, history: int = 10_000) -> NodeServer:
    require("node", "the Node.js baseline row")
    ok, why = node_available()
    if not ok:
        (pytest.fail if IN_CI else pytest.skip)(why)
    return NodeServer(rate, size, history=history).start()


@pytest.fixture(scope="module")
def node() -> Iterator[NodeServer]:
    srv = node_server()
    yield srv
    srv.stop()


@pytest.fixture
async def http() -> AsyncGenerator[httpx.AsyncClient, None]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


def make(transport: str, srv: NodeServer, topic: str, **kwargs) -> FeedClient:
    if transport == "poll":
        kwargs.setdefault("interval_s", 0.02)
    if transport == "long-poll":  # its first answer (the cursor) comes when the wait ends
        kwargs.setdefault("wait_s", 2.0)
    return CLIENTS[transport](srv.url, topic, retry=FAST_RETRY, **kwargs)


def test_node_available_reports_why():
    """``node_available`` says yes with a version, or why not; it never raises."""
    ok, why = node_available()
    assert isinstance(ok, bool) and why
    if ok:
        assert why.startswith("node v")
    assert (NODE_DIR / "package-lock.json").exists()


@pytest.mark.parametrize("transport", sorted(CLIENTS))
async def test_in_order_exactly_once(transport, node, http):
    """Events published after subscribing arrive in order, none lost or duplicated."""
    topic = f"order-{transport}"
    c = Collector(make(transport, node, topic))
    await ready(c.client)
    await publish(http, node.url, topic, 200)
    await c.until(200)
    await c.close()
    assert c.seqs == list(range(1, 201))
    assert (c.client.counters.duplicates, c.client.counters.silent_gaps) == (0, 0)


@pytest.mark.parametrize("transport", sorted(CLIENTS))
async def test_resume_after_client_side_drop(transport, node, http):
    """The client's socket is cut mid-stream, repeatedly; it resumes with nothing lost."""
    topic = f"drop-{transport}"
    c = Collector(make(transport, node, topic))
    await ready(c.client)
    for round_ in range(4):
        await publish(http, node.url, topic, 30, start=30 * round_)
        await c.until(30 * round_ + 10)
        c.client.drop()
    await c.until(120)
    await c.close()
    assert c.seqs == list(range(1, 121))
    assert c.client.counters.connections >= 2 and c.client.counters.silent_gaps == 0


@pytest.mark.parametrize("transport", PUSHED)
async def test_resume_after_kick(transport, node, http):
    """The server closes every stream (1012 / ``end: kicked``); the client resumes exactly."""
    topic = f"kick-{transport}"
    c = Collector(make(transport, node, topic))
    await ready(c.client)
    await publish(http, node.url, topic, 40)
    await c.until(20)
    assert (await http.post(f"{node.url}/admin/kick", params={"topic": topic})).json()["kicked"]
    await publish(http, node.url, topic, 40, start=40)
    await c.until(80)
    await c.close()
    assert c.seqs == list(range(1, 81))


@pytest.mark.parametrize("transport", sorted(CLIENTS))
async def test_gap_past_history_is_signalled(transport, http):
    """Resuming from before the retained history yields one explicit recovered=false gap."""
    srv = node_server(history=10)
    try:
        await publish(http, srv.url, "t", 30)
        c = Collector(make(transport, srv, "t", since=5))
        await c.until(10)
        await c.close()
    finally:
        srv.stop()
    gaps = [i for i in c.items if isinstance(i, Gap)]
    assert [(g.reason, g.oldest_seq, g.since, g.resume_after) for g in gaps] == [
        ("expired", 21, 5, 20)
    ]
    assert isinstance(c.items[0], Gap) and c.seqs == list(range(21, 31))


@pytest.mark.parametrize("transport", sorted(CLIENTS))
async def test_cursor_ahead_is_signalled(transport, node, http):
    """A cursor newer than anything published is reported as reason=ahead."""
    topic = f"ahead-{transport}"
    await publish(http, node.url, topic, 3)
    c = Collector(make(transport, node, topic, since=500))
    await c.until(3)
    await c.close()
    assert [g.reason for g in c.items if isinstance(g, Gap)] == ["ahead"]
    assert c.seqs == [1, 2, 3]


async def test_ticker_payload_matches_python(http):
    """The Node ticker's events have feed/ticker.py's shape and exact JSON size."""
    srv = node_server(rate=200, size=64)
    try:
        c = Collector(make("ws", srv, "ticks", since=0))
        await c.until(50)
        await c.close()
    finally:
        srv.stop()
    for item in c.items:
        if isinstance(item, Received):
            data, i = item.event.data, item.event.data["i"]
            ours = make_payload(i, 64)
            assert len(orjson.dumps(data)) == len(orjson.dumps(ours)) == 64
            assert data["pad"] == ours["pad"] and abs(data["price"] - ours["price"]) < 1e-3


async def test_ts_ns_is_comparable_with_time_time_ns(node, http):
    """The server's ts_ns sits between two time.time_ns() readings around the publish."""
    for _ in range(20):
        before = time.time_ns()
        r = await http.post(f"{node.url}/publish", params={"topic": "clock"}, json=1)
        after = time.time_ns()
        assert before - 1_000_000 <= r.json()["ts_ns"] <= after + 1_000_000


async def test_publish_errors(node, http):
    """Bad topic / JSON / size and bad cursors get the contract's status and error code."""
    url = node.url
    cases = [
        (await http.post(f"{url}/publish", params={"topic": "a b"}, json=1), 400, "bad_topic"),
        (
            await http.post(f"{url}/publish", params={"topic": "a"}, content=b"{x"),
            400,
            "invalid_json",
        ),
        (
            await http.post(f"{url}/publish", params={"topic": "a"}, content=b"1" * 70_000),
            413,
            "payload_too_large",
        ),
        (await http.get(f"{url}/sse", params={"topic": "a", "since": "-1"}), 400, "bad_cursor"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]) == (status, code)


async def test_ws_frames_and_refusals(node):
    """ping/publish work, garbage gets error frames then 1008, a bad cursor is refused."""
    ws_url = node.url.replace("http", "ws") + "/ws?topic=frames"
    async with connect(ws_url) as ws:
        assert orjson.loads(await ws.recv())["type"] == "ready"
        await ws.send(orjson.dumps({"type": "ping", "id": 7}).decode())
        assert orjson.loads(await ws.recv()) == {"type": "pong", "id": 7}
        await ws.send(orjson.dumps({"type": "publish", "data": {"x": 1}, "id": 1}).decode())
        frames = [orjson.loads(await ws.recv()) for _ in range(2)]
        assert {f.get("type", "event") for f in frames} == {"published", "event"}
        await ws.send(b"\x00")
        assert orjson.loads(await ws.recv())["error"] == "unsupported"
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(10):
                await ws.send("not json")
                assert orjson.loads(await ws.recv())["error"] == "invalid_json"
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    with pytest.raises(Exception, match="400"):
        async with connect(ws_url + "&since=abc"):
            pass


def test_survives_a_protocol_violating_frame(node):
    """An unmasked client frame (RFC 6455 violation) closes that socket, not the server."""
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as s:
        s.sendall(upgrade_request("x", "/ws?topic=bad", new_ws_key()))
        assert s.recv(4096).startswith(b"HTTP/1.1 101")
        s.sendall(encode_frame(TEXT, b"hello"))  # no mask_key: unmasked, as a client must not
        while s.recv(4096):
            pass
    assert node.proc is not None and node.proc.poll() is None
    assert httpx.get(f"{node.url}/healthz", trust_env=False).json()["status"] == "ok"


async def test_sigterm_closes_streams_with_1001():
    """SIGTERM closes WebSockets with 1001 (reconnect) and the process exits 0."""
    srv = node_server()
    ws_url = srv.url.replace("http", "ws") + "/ws?topic=t"
    async with connect(ws_url) as ws:
        await ws.recv()
        code = await asyncio.to_thread(srv.stop)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert code == 0
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


# POST /admin/ticker queries whose answers must match servers/demos/pages.py exactly (the bench
# pauses and resumes both servers' tickers through this one contract).
TICKER_QUERIES = [
    {}, {"rate": -1}, {"rate": "fast"}, {"rate": ""}, {"rate": "inf"}, {"rate": "nan"},
    {"rate": 10_001}, {"rate": "0x10"}, {"rate": "1_0"}, {"rate": "1e3"}, {"rate": " 7 "},
    {"size": -5}, {"size": "1.5"}, {"size": "1.0"}, {"size": "1e3"}, {"size": "1."},
    {"size": 70_000}, {"rate": -1, "size": "x"}, {"rate": 0, "size": 32},
]  # fmt: skip


def _answer(r: httpx.Response) -> tuple[int, object]:
    body = r.json()
    if isinstance(body.get("rate"), int):
        body["rate"] = float(body["rate"])  # JSON 5 vs 5.0: the same number
    return r.status_code, body


def test_ticker_control_answers_like_the_python_server(serve, settings):
    """GET/POST /admin/ticker: statuses and bodies as servers/demos/pages.py, 404 without ticker."""
    node_on, node_off = node_server(rate=5), node_server(rate=0)
    on, off = settings.replace(ticker_rate=5, admin=True), settings.replace(admin=True)
    py_on, py_off = serve(on), serve(off)
    try:
        with httpx.Client(trust_env=False) as http:
            for q in TICKER_QUERIES:
                ours = _answer(http.post(f"{py_on.url}/admin/ticker", params=q))
                assert _answer(http.post(f"{node_on.url}/admin/ticker", params=q)) == ours, q
            for srv_node, srv_py in ((node_on, py_on), (node_off, py_off)):
                for q in ({}, {"rate": 1}):
                    ours = _answer(http.post(f"{srv_py.url}/admin/ticker", params=q))
                    theirs = _answer(http.post(f"{srv_node.url}/admin/ticker", params=q))
                    assert theirs == ours, q
                get = _answer(http.get(f"{srv_node.url}/admin/ticker"))
                assert get == _answer(http.get(f"{srv_py.url}/admin/ticker"))
            assert get[0] == 404 and get[1]["error"] == "no_ticker"
    finally:
        node_on.stop()
        node_off.stop()


async def test_ticker_pause_and_resume(http):
    """rate 0 stops publishing at once; a new rate restarts the schedule (tick numbers from 1)."""
    srv = node_server(rate=500, size=64)
    try:

        async def published() -> int:
            r = await http.get(f"{srv.url}/healthz")
            return int(r.json()["broker"]["published"])

        paused = await http.post(f"{srv.url}/admin/ticker", params={"rate": 0})
        assert paused.json() == {"topic": "ticks", "rate": 0, "size": 64}
        last = await published()
        c = Collector(make("ws", srv, "ticks"))
        await ready(c.client)
        assert c.client.last_seq == last  # nothing published since the answer left
        # The resumed ticker's first event goes to a subscriber that connected while paused.
        await http.post(f"{srv.url}/admin/ticker", params={"rate": 200, "size": 100})
        await c.until(20)
        await c.close()
    finally:
        srv.stop()
    assert c.seqs[:20] == list(range(last + 1, last + 21))
    first = next(i for i in c.items if isinstance(i, Received))
    assert first.event.data["i"] == 1 and len(orjson.dumps(first.event.data)) == 100


# GET /poll and /long-poll queries whose statuses and error bodies must match servers/short_poll.py
# and servers/long_poll.py (the capacity search drives both servers with one polling wire).
POLL_QUERIES = [
    ("/poll", {}), ("/poll", {"topic": "a b"}), ("/poll", {"topic": "q", "since": "-1"}),
    ("/poll", {"topic": "q", "since": "x"}), ("/poll", {"topic": "q", "limit": "0"}),
    ("/poll", {"topic": "q", "limit": "x"}), ("/poll", {"topic": "q", "since": "0", "limit": "2"}),
    ("/poll", {"topic": "q", "since": "9"}), ("/poll", {"topic": "q"}),
    ("/long-poll", {}), ("/long-poll", {"topic": "q", "since": "-1"}),
    ("/long-poll", {"topic": "q", "timeout": "0"}),
    ("/long-poll", {"topic": "q", "timeout": "nan"}),
    ("/long-poll", {"topic": "q", "timeout": "x"}), ("/long-poll", {"topic": "q", "since": "1"}),
    ("/long-poll", {"topic": "q", "since": "3", "timeout": "0.05"}),
]  # fmt: skip


def _poll_answer(r: httpx.Response) -> tuple[int, object, str | None]:
    body = r.json() if r.content else None
    if isinstance(body, dict):
        if isinstance(body.get("detail"), str):
            del body["detail"]  # prose: the error code and the 422's loc/msg list are the contract
        for e in body.get("events", []):
            e.pop("ts_ns")  # each server stamps its own clock
    return r.status_code, body, r.headers.get("pushlab-cursor")


def test_poll_answers_like_the_python_server(serve, settings):
    """Statuses, bodies and the 204's cursor of /poll and /long-poll as the Python server's."""
    srv_node, srv_py = node_server(), serve(settings)
    try:
        with httpx.Client(trust_env=False) as http:
            for srv in (srv_node, srv_py):
                for i in range(3):
                    http.post(f"{srv.url}/publish", params={"topic": "q"}, json={"i": i})
            for path, q in POLL_QUERIES:
                ours = _poll_answer(http.get(f"{srv_py.url}{path}", params=q))
                assert _poll_answer(http.get(f"{srv_node.url}{path}", params=q)) == ours, (path, q)
    finally:
        srv_node.stop()


async def test_long_poll_wakes_on_publish_and_forgets_a_gone_client(node, http):
    """A parked long poll answers with the next event; one whose client left is not answered."""
    url = f"{node.url}/long-poll"
    gone = asyncio.create_task(http.get(url, params={"topic": "park", "timeout": 30}))
    parked = asyncio.create_task(http.get(url, params={"topic": "park", "timeout": 30}))

    async def parked_count() -> int:
        r = await http.get(f"{node.url}/healthz")
        return int(r.json()["broker"]["parked"])

    deadline = time.monotonic() + 10
    while await parked_count() < 2:
        assert time.monotonic() < deadline, "the two long polls never parked"
        await asyncio.sleep(0.01)
    gone.cancel()
    while await parked_count() > 1:
        assert time.monotonic() < deadline, "the cancelled long poll stayed parked"
        await asyncio.sleep(0.01)
    await publish(http, node.url, "park", 1)
    answer = await asyncio.wait_for(parked, 10)
    assert answer.status_code == 200 and [e["seq"] for e in answer.json()["events"]] == [1]
    assert await parked_count() == 0


@pytest.fixture(scope="module")
def node_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeServer, TLSFiles]]:
    """The baseline on node:http2's secure server (ALPN h2, HTTP/1.1 still accepted)."""
    require("node", "the Node.js baseline row")
    tls = make_tls(tmp_path_factory.mktemp("node-tls"))
    srv = NodeServer(tls=tls, http2=True).start()
    yield srv, tls
    srv.stop()


@pytest.mark.parametrize("transport", ["poll", "long-poll", "sse"])
async def test_http2_feed_in_order(transport, node_tls):
    """Over HTTP/2 (node:http2) the polls and SSE deliver in order on h2 connections."""
    srv, tls = node_tls
    c = Collector(make(transport, srv, f"h2-{transport}", http2=True, verify=tls.client_context()))
    await ready(c.client)
    async with httpx.AsyncClient(trust_env=False, verify=tls.client_context()) as http:
        await publish(http, srv.url, f"h2-{transport}", 50)
    await c.until(50)
    await c.close()
    assert c.seqs == list(range(1, 51))
    async with httpx.AsyncClient(trust_env=False, verify=tls.client_context(), http2=True) as http:
        r = await http.get(f"{srv.url}/poll", params={"topic": "h2-poll", "since": 49})
    assert r.http_version == "HTTP/2" and r.json()["events"][0]["seq"] == 50


async def test_websocket_over_http2_is_not_supported(node_tls):
    """The evidence for matrix.NOT_SUPPORTED: node:http2 does not announce the extended CONNECT
    (RFC 8441), so no WebSocket over HTTP/2; over HTTP/1.1 on the same TLS port it works."""
    srv, tls = node_tls
    wss = srv.url.replace("https", "wss") + "/ws?topic=h2ws"
    with pytest.raises(h2ws.H2WebSocketError, match="SETTINGS_ENABLE_CONNECT_PROTOCOL"):
        async with h2ws.connect(wss, ssl_context=tls.client_context()):
            pass
    async with connect(wss, ssl=tls.client_context()) as ws:  # ALPN http/1.1: an Upgrade
        assert orjson.loads(await ws.recv())["type"] == "ready"
    assert ("node", "ws", "h2-tls") in NOT_SUPPORTED


async def test_http3_is_not_served(node_tls):
    """The evidence for matrix.NOT_SUPPORTED's Node HTTP/3 rows: the baseline's runtime has no
    QUIC module, and nothing answers a QUIC handshake on the TLS port's number over UDP."""
    srv, tls = node_tls
    argv = [shutil.which("node") or "node", "-e", "require('node:quic')"]
    probe = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert probe.returncode != 0 and "ERR_UNKNOWN_BUILTIN_MODULE" in probe.stderr
    h3 = httpx.AsyncClient(transport=H3Transport(tls.client_context()), timeout=1.0)
    async with h3:
        with pytest.raises(httpx.ConnectError, match="QUIC handshake"):
            await h3.get(srv.url + "/healthz")
    assert all(("node", t, "h3") in NOT_SUPPORTED for t in ("poll", "long-poll", "sse", "ws"))
