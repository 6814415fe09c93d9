"""The WebTransport (HTTP/3) server: admission answers, certificate, shutdown, datagram loss."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from urllib.parse import urlencode

import httpx
import pytest
from aioquic.h3.events import DataReceived, HeadersReceived, WebTransportStreamDataReceived
from cryptography.hazmat.primitives.asymmetric import ec

from clients._h3 import H3Client, connect
from clients.base import Received
from clients.webtransport import WebTransportClient
from feed.codec import loads
from feed.settings import Settings
from servers.auth import issue
from servers.cli import add_arguments, settings_from_args
from servers.webtransport.cert import MAX_VALIDITY, self_signed
from servers.webtransport.session import DATAGRAM_MAX_PAYLOAD
from tests.support import MS, async_wait_until


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({}, ticker_rate=0, webtransport_port=0)


def info(url: str) -> dict:
    r = httpx.get(f"{url}/webtransport", trust_env=False)
    assert r.status_code == 200, r.text
    return r.json()


async def session(
    url: str,
    query: dict[str, str],
    *,
    path: str = "/wt",
    headers: list[tuple[bytes, bytes]] | None = None,
    protocol: bytes = b"webtransport",
) -> tuple[H3Client, int, int, bytes]:
    """Open a session by hand: the connection, the session id, the status and the body."""
    where = info(url)
    conn = await connect(
        "127.0.0.1", where["port"], cert_sha256=bytes.fromhex(where["cert_sha256"])
    )
    sid = conn.open_session(
        f"127.0.0.1:{where['port']}", f"{path}?{urlencode(query)}", headers or [], protocol
    )
    event = await asyncio.wait_for(conn.queue.get(), 5 * MS)
    assert isinstance(event, HeadersReceived) and event.stream_id == sid
    head = dict(event.headers)
    body = b""
    if head[b":status"] != b"200":
        while not event.stream_ended:
            event = await asyncio.wait_for(conn.queue.get(), 5 * MS)
            assert isinstance(event, DataReceived)
            body += event.data
    return conn, sid, int(head[b":status"]), body


async def lines(conn: H3Client, sid: int, n: int) -> list[dict]:
    """The first ``n`` lines of the session's unidirectional stream."""
    buffer = b""
    while buffer.count(b"\n") < n:
        event = await asyncio.wait_for(conn.queue.get(), 5 * MS)
        if isinstance(event, WebTransportStreamDataReceived) and event.session_id == sid:
            buffer += event.data
    return [loads(raw) for raw in buffer.split(b"\n")[:n]]


def test_certificate_fits_chromium_hash_pinning():
    """ECDSA P-256 and valid at most 14 days: what serverCertificateHashes accepts."""
    cert = self_signed()
    assert isinstance(cert.key, ec.EllipticCurvePrivateKey)
    assert isinstance(cert.key.curve, ec.SECP256R1)
    span = cert.cert.not_valid_after_utc - cert.cert.not_valid_before_utc
    assert span <= MAX_VALIDITY
    with pytest.raises(ValueError):
        self_signed(validity=MAX_VALIDITY + dt.timedelta(seconds=1))


async def test_info_names_the_certificate_served(serve, settings):
    """The hash GET /webtransport publishes is the certificate the QUIC handshake presents."""
    live = serve(settings)
    where = info(live.url)
    assert where["url"] == f"https://127.0.0.1:{where['port']}/wt"
    conn = await connect("127.0.0.1", where["port"], verify=False)
    try:
        assert conn.peer_cert_sha256() == bytes.fromhex(where["cert_sha256"])
    finally:
        conn.shutdown()


def test_info_is_404_when_off(serve, settings):
    """Without a WebTransport port the info route says so; the client gives up at once."""
    live = serve(settings.replace(webtransport_port=-1))
    r = httpx.get(f"{live.url}/webtransport", trust_env=False)
    assert (r.status_code, r.json()["error"]) == (404, "webtransport_off")


async def test_client_refuses_a_certificate_it_did_not_pin(serve, settings):
    """A hash that does not match the server's certificate ends the handshake, fatally."""
    from feed.exceptions import FatalTransportError

    live = serve(settings)
    with pytest.raises(FatalTransportError, match="pinned"):
        await connect("127.0.0.1", info(live.url)["port"], cert_sha256=b"\0" * 32)


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [
        ("no token", 401, "unauthorized"),
        ("bad token", 401, "unauthorized"),
        ("bad origin", 403, "origin_not_allowed"),
        ("bad topic", 400, "bad_topic"),
        ("bad cursor", 400, "bad_cursor"),
        ("bad datagrams", 400, "bad_request"),
        ("other path", 404, "not_found"),
        ("websocket over h3", 501, "not_implemented"),
    ],
)
async def test_refusals_are_http3_answers(serve, settings, caplog, case, status, error):
    """Every refusal is a status and a JSON body on the CONNECT stream, logged without traceback."""
    live = serve(settings.replace(auth=True, origins="http://good.example"))
    token, _ = issue(live.settings, "ann")
    query = {"topic": "t", "token": token}
    kwargs: dict = {}
    if case == "no token":
        del query["token"]
    elif case == "bad token":
        query["token"] = token[:-4] + "AAAA"
    elif case == "bad origin":
        kwargs["headers"] = [(b"origin", b"http://evil.example")]
    elif case == "bad topic":
        query["topic"] = "no spaces"
    elif case == "bad cursor":
        query["since"] = "-1"
    elif case == "bad datagrams":
        query["datagrams"] = "yes"
    elif case == "other path":
        kwargs["path"] = "/nope"
    elif case == "websocket over h3":
        kwargs["protocol"] = b"websocket"
    with caplog.at_level(logging.INFO):
        conn, _, got, body = await session(live.url, query, **kwargs)
    conn.shutdown()
    assert (got, loads(body)["error"]) == (status, error)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_client_stops_on_a_refused_token(serve, settings):
    """The Python client gets the 401 and gives up instead of retrying forever."""
    from feed.exceptions import FatalTransportError

    live = serve(settings.replace(auth=True))
    client = WebTransportClient(live.url, "t", token="not-a-jwt")
    with pytest.raises(FatalTransportError) as refused:
        await asyncio.wait_for(anext(client.events()), 10 * MS)
    assert refused.value.status == 401


async def test_a_good_token_and_origin_are_accepted(serve, settings):
    """With auth and an Origin allowlist, the right token and Origin get 200 and a ready line."""
    live = serve(settings.replace(auth=True, origins="http://good.example"))
    token, _ = issue(live.settings, "ann")
    conn, sid, status, _ = await session(
        live.url, {"topic": "t", "token": token}, headers=[(b"origin", b"http://good.example")]
    )
    try:
        assert status == 200
        assert await lines(conn, sid, 1) == [{"type": "ready", "topic": "t", "cursor": 0}]
    finally:
        conn.shutdown()


async def test_expired_token_ends_the_session(serve, settings):
    """A session lives as long as its token: then an end line with reason token_expired."""
    live = serve(settings.replace(auth=True))
    token, _ = issue(live.settings, "ann", ttl_s=2)  # expires in 1-2 s (whole seconds)
    conn, sid, status, _ = await session(live.url, {"topic": "t", "token": token})
    try:
        assert status == 200
        got = await lines(conn, sid, 2)
        assert got[1] == {"type": "end", "reason": "token_expired"}
    finally:
        conn.shutdown()


async def test_per_ip_cap_is_a_429(serve, settings):
    """The per-IP connection cap counts WebTransport sessions like every stream."""
    live = serve(settings.replace(max_conns_per_ip=1))
    first, sid, status, _ = await session(live.url, {"topic": "t"})
    try:
        assert status == 200
        await lines(first, sid, 1)
        second, _, refused, body = await session(live.url, {"topic": "t"})
        second.shutdown()
        assert (refused, loads(body)["error"]) == (429, "too_many_connections")
    finally:
        first.shutdown()


async def test_shutdown_says_goodbye(serve, settings):
    """Draining ends each session with an end line (reason shutdown), then the stream's FIN."""
    live = serve(settings)
    conn, sid, status, _ = await session(live.url, {"topic": "t"})
    try:
        assert status == 200
        await lines(conn, sid, 1)
        await asyncio.to_thread(live.stop)
        buffer, ended = b"", False
        while not ended:
            event = await asyncio.wait_for(conn.queue.get(), 5 * MS)
            if isinstance(event, WebTransportStreamDataReceived):
                buffer += event.data
                ended = event.stream_ended
        assert [loads(raw) for raw in buffer.split(b"\n") if raw] == [
            {"type": "end", "reason": "shutdown"}
        ]
    finally:
        conn.shutdown()


async def test_datagram_mode_counts_what_it_cannot_send(serve, settings):
    """An event too big for one datagram is not sent: the server counts it, the client sees the
    hole in seq (loss, not a server bug) and goes on."""
    live = serve(settings)
    client = WebTransportClient(live.url, "d", datagrams=True)
    got: list[int] = []

    async def run() -> None:
        async for item in client.events():
            if isinstance(item, Received):
                got.append(item.event.seq)

    task = asyncio.ensure_future(run())
    try:
        await async_wait_until(lambda: client.last_seq is not None, 10, "ready")
        async with httpx.AsyncClient(trust_env=False) as http:
            for data in ("small", "x" * (DATAGRAM_MAX_PAYLOAD + 1), "small"):
                r = await http.post(f"{live.url}/publish", params={"topic": "d"}, json=data)
                assert r.status_code == 200
        await async_wait_until(lambda: 3 in got, 10, "the third event")
    finally:
        task.cancel()
    assert got == [1, 3]
    assert client.counters.silent_gaps == 1
    assert info(live.url)["datagrams"] == {
        "sent": 2,
        "dropped_too_big": 1,
        "dropped_over_budget": 0,
    }


async def test_datagrams_past_the_budget_are_dropped_and_counted(serve, settings):
    """A replay of 1,000 events in one batch: the first DATAGRAM_BUDGET are queued, the rest are
    dropped (not queued without bound) and counted; the client sees the holes."""
    from feed.memory import MemoryBroker
    from servers.webtransport.session import DATAGRAM_BUDGET

    broker = MemoryBroker(settings.history)
    for i in range(1000):
        await broker.publish("flood", {"i": i})
    live = serve(settings, broker=broker)
    client = WebTransportClient(live.url, "flood", since=0, datagrams=True)
    got: list[int] = []

    async def run() -> None:
        async for item in client.events():
            if isinstance(item, Received):
                got.append(item.event.seq)

    task = asyncio.ensure_future(run())
    try:
        await async_wait_until(lambda: len(got) >= DATAGRAM_BUDGET, 10, "the queued datagrams")
    finally:
        task.cancel()
    counts = info(live.url)["datagrams"]
    assert counts["sent"] == DATAGRAM_BUDGET
    assert counts["dropped_over_budget"] == 1000 - DATAGRAM_BUDGET
    assert got == list(range(1, DATAGRAM_BUDGET + 1))  # loopback: what was sent, arrived


def test_port_setting_is_checked():
    """-1 (off), 0 (any free port) or a port; anything else is refused at startup."""
    for bad in ("-2", "65536", "x"):
        with pytest.raises(ValueError, match="WEBTRANSPORT_PORT|webtransport_port"):
            Settings.from_env({"PUSHLAB_WEBTRANSPORT_PORT": bad})


def test_serve_flag_turns_it_on():
    """``pushlab serve --webtransport-port 0`` is the setting; off (-1) by default."""
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert settings_from_args(parser.parse_args([])).webtransport_port == -1
    args = parser.parse_args(["--webtransport-port", "0"])
    assert settings_from_args(args).webtransport_port == 0


def test_serve_refuses_webtransport_with_workers(capsys):
    """N workers cannot share QUIC connections: refused before anything starts."""
    import argparse

    from servers.cli import run as serve_run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--workers", "2", "--webtransport-port", "0"])
    assert serve_run(args) == 2
    assert "--workers 1" in capsys.readouterr().err
