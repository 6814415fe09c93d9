"""JWT authentication on every transport, against a real server with real tokens."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from clients import CLIENTS, Received, RetryPolicy
from feed.exceptions import FatalTransportError
from feed.settings import SSE_IMPLS
from servers.auth import issue
from tests.support import MS, each_sse_impl

TRANSPORTS = sorted(CLIENTS)


@pytest.fixture
def auth_settings(settings):
    # WebTransport on as well: TRANSPORTS is every client, the HTTP/3 one included.
    return settings.replace(auth=True, auth_first_message_s=0.5 * MS, webtransport_port=0)


@pytest.fixture
def server(serve, auth_settings):
    return serve(auth_settings)


def bad_tokens(settings) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": "mallory", "iat": now, "exp": now + 60}
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "expired": jwt.encode(claims | {"exp": now - 5}, settings.auth_secret, "HS256"),
        "bad_signature": jwt.encode(
            claims, "a-different-secret-that-is-long-enough-for-hs256-and-hs512-0123456789", "HS256"
        ),
        "alg_none": jwt.encode(claims, None, algorithm="none"),
        "hs512": jwt.encode(claims, settings.auth_secret, "HS512"),
        "rs256": jwt.encode(claims, rsa_key, "RS256"),
        "no_exp": jwt.encode({"sub": "mallory"}, settings.auth_secret, "HS256"),
        "garbage": "not.a.jwt",
    }


async def get_token(url: str, user: str = "alice") -> str:
    async with httpx.AsyncClient(trust_env=False) as http:
        r = await http.post(f"{url}/token", json={"user": user})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and 0 < body["expires_in"] <= 300
    return str(body["access_token"])


async def test_token_endpoint_validates_user(server):
    """POST /token refuses a missing or unsafe user name with 422."""
    async with httpx.AsyncClient(trust_env=False) as http:
        for body in ({}, {"user": ""}, {"user": "a b"}, {"user": "x" * 65}):
            r = await http.post(f"{server.url}/token", json=body)
            assert r.status_code == 422, body


@pytest.mark.parametrize(
    ("path", "sse_impl"), each_sse_impl(["/poll", "/long-poll", "/sse", "/stream"], "/sse")
)
async def test_http_transports_need_a_valid_token(server, auth_settings, path):
    """No token, a malformed header, and every kind of bad token get 401 before any work."""
    params = {"topic": "t", "since": "0", "timeout": "0.1"}
    async with httpx.AsyncClient(trust_env=False, base_url=server.url) as http:
        r = await http.get(path, params=params)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = await http.get(path, params=params, headers={"Authorization": "Basic abc"})
        assert r.status_code == 401
        for name, bad in bad_tokens(auth_settings).items():
            r = await http.get(path, params=params, headers={"Authorization": f"Bearer {bad}"})
            assert r.status_code == 401, name
            assert r.json()["error"] == "unauthorized"
            r = await http.get(path, params=params | {"token": bad})
            assert r.status_code == 401, name


async def test_ws_bad_tokens_refused_before_upgrade(server, auth_settings):
    """Every bad token, in the subprotocol, header or query, is an HTTP 401 and never a 101."""
    ws_url = server.url.replace("http", "ws") + "/ws?topic=t"
    for name, bad in bad_tokens(auth_settings).items():
        attempts = [
            {"subprotocols": ["pushlab.v1", f"bearer.{bad}"]},
            {"additional_headers": {"Authorization": f"Bearer {bad}"}},
        ]
        for kwargs in attempts:
            with pytest.raises(InvalidStatus) as info:
                async with connect(ws_url, **kwargs):
                    pass
            assert info.value.response.status_code == 401, name
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"{ws_url}&token={bad}"):
                pass
        assert info.value.response.status_code == 401, name


async def test_ws_subprotocol_token_is_accepted_and_echoed(server):
    """A bearer subprotocol authenticates; the server echoes pushlab.v1, never the token."""
    token = await get_token(server.url)
    ws_url = server.url.replace("http", "ws") + "/ws?topic=t"
    async with connect(ws_url, subprotocols=["pushlab.v1", f"bearer.{token}"]) as ws:
        assert ws.subprotocol == "pushlab.v1"
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "pushlab.v1"
        assert '"ready"' in await ws.recv()
    with pytest.raises(InvalidStatus) as info:
        async with connect(ws_url, subprotocols=[f"bearer.{token}"]):
            pass
    assert info.value.response.status_code == 400


async def test_ws_first_message_auth(server):
    """Without a handshake token the first frame must authenticate before the deadline."""
    token = await get_token(server.url)
    ws_url = server.url.replace("http", "ws") + "/ws?topic=t"
    async with connect(ws_url) as ws:
        await ws.send(f'{{"type":"auth","token":"{token}"}}')
        assert '"authenticated"' in await ws.recv()
        assert '"ready"' in await ws.recv()
    for first in ['{"type":"ping","id":1}', '{"type":"auth","token":"x.y.z"}', "garbage"]:
        async with connect(ws_url) as ws:
            await ws.send(first)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5 * MS)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008, first
    async with connect(ws_url) as ws:  # silent: the deadline closes it
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5 * MS)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert closed.value.rcvd.reason == "auth timeout"


@pytest.mark.parametrize(("transport", "sse_impl"), each_sse_impl(TRANSPORTS))
async def test_clients_deliver_with_a_token(transport, server):
    """Each client sends its token the right way for its transport and receives events."""
    token = await get_token(server.url)
    extra = {"interval_s": 0.02} if transport == "poll" else {}
    client = CLIENTS[transport](server.url, "t", since=0, token=token, **extra)
    async with httpx.AsyncClient(trust_env=False) as http:
        auth = {"Authorization": f"Bearer {token}"}
        await http.post(f"{server.url}/publish", params={"topic": "t"}, json=1, headers=auth)
    items = client.events()
    item = await asyncio.wait_for(anext(items), 10 * MS)
    await items.aclose()
    assert isinstance(item, Received) and item.event.seq == 1


@pytest.mark.parametrize(
    ("transport", "kwargs", "sse_impl"),
    [
        *[("sse", {"token_in_query": True}, impl) for impl in SSE_IMPLS],
        ("stream", {"token_in_query": True}, SSE_IMPLS[0]),
        ("ws", {"auth": "header"}, SSE_IMPLS[0]),
        ("ws", {"auth": "query"}, SSE_IMPLS[0]),
        ("ws", {"auth": "message"}, SSE_IMPLS[0]),
    ],
)
async def test_other_token_carriers(transport, kwargs, server):
    """?token= (EventSource, /stream), the Authorization header and first-message auth work."""
    token = await get_token(server.url)
    client = CLIENTS[transport](server.url, "t", since=0, token=token, **kwargs)
    async with httpx.AsyncClient(trust_env=False) as http:
        auth = {"Authorization": f"Bearer {token}"}
        await http.post(f"{server.url}/publish", params={"topic": "t"}, json=1, headers=auth)
    items = client.events()
    item = await asyncio.wait_for(anext(items), 10 * MS)
    await items.aclose()
    assert isinstance(item, Received)


@pytest.mark.parametrize(("transport", "sse_impl"), each_sse_impl(TRANSPORTS))
async def test_clients_without_token_fail_fatally(transport, server):
    """A 401 is not retried forever: it surfaces as a fatal error."""
    client = CLIENTS[transport](server.url, "t", retry=RetryPolicy(base_s=0.01))
    with pytest.raises((FatalTransportError, InvalidStatus, ConnectionClosed)):
        await asyncio.wait_for(anext(client.events()), 10 * MS)


async def test_ws_session_ends_1008_when_token_expires(server, auth_settings):
    """A token that expires mid-session closes the socket with 1008 at expiry."""
    token, exp = issue(auth_settings, "alice", ttl_s=2)  # whole seconds: 1-2 s left
    ws_url = server.url.replace("http", "ws") + "/ws?topic=t"
    async with connect(ws_url, subprotocols=["pushlab.v1", f"bearer.{token}"]) as ws:
        await ws.recv()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 5 * MS)
        ended = time.time()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason == "token_expired"
    assert exp - 0.1 <= ended <= exp + 1.0 * MS


async def test_ws_token_refresh_extends_session(server, auth_settings):
    """Sending a fresh token mid-session moves the expiry; a bad one is an error frame."""
    short, exp = issue(auth_settings, "alice", ttl_s=2)  # exp is whole seconds: 1-2 s left
    ws_url = server.url.replace("http", "ws") + "/ws?topic=t"
    async with connect(ws_url, subprotocols=["pushlab.v1", f"bearer.{short}"]) as ws:
        await ws.recv()
        await ws.send('{"type":"auth","token":"bad.token.here"}')
        assert '"unauthorized"' in await ws.recv()
        fresh, _ = issue(auth_settings, "alice", ttl_s=60)
        await ws.send(f'{{"type":"auth","token":"{fresh}"}}')
        assert '"authenticated"' in await ws.recv()
        await asyncio.sleep(max(0.0, exp - time.time()) + 0.5)
        await ws.send('{"type":"ping","id":1}')
        assert '"pong"' in await asyncio.wait_for(ws.recv(), 5 * MS)


@pytest.mark.parametrize("sse_impl", SSE_IMPLS)
async def test_sse_stream_ends_when_token_expires(server, auth_settings):
    """SSE ends with event: end, reason token_expired, at the token's expiry."""
    token, exp = issue(auth_settings, "alice", ttl_s=2)  # whole seconds: 1-2 s left
    async with (
        httpx.AsyncClient(trust_env=False, timeout=10) as http,
        http.stream("GET", f"{server.url}/sse", params={"topic": "t", "token": token}) as r,
    ):
        assert r.status_code == 200
        text = ""
        async for chunk in r.aiter_text():
            text += chunk
    assert time.time() >= exp - 0.1
    assert "event: end" in text and "token_expired" in text


async def test_ndjson_stream_ends_when_token_expires(server, auth_settings):
    """/stream ends with an end line, reason token_expired, at the token's expiry."""
    token, exp = issue(auth_settings, "alice", ttl_s=2)  # whole seconds: 1-2 s left
    auth = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(trust_env=False, timeout=10) as http,
        http.stream("GET", f"{server.url}/stream", params={"topic": "t"}, headers=auth) as r,
    ):
        assert r.status_code == 200
        lines = [line async for line in r.aiter_lines()]
    assert time.time() >= exp - 0.1
    assert lines[0] == '{"type":"ready","topic":"t","cursor":0}'
    assert lines[-1] == '{"type":"end","reason":"token_expired"}'


async def test_auth_is_off_by_default(live):
    """The default settings serve without any token (the bench runs like this)."""
    async with httpx.AsyncClient(trust_env=False) as http:
        r = await http.get(f"{live.url}/poll", params={"topic": "t"})
    assert r.status_code == 200
