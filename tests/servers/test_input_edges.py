"""Edges of HTTP input: names with a trailing newline, oversized bodies, one bad-topic contract."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from feed.names import is_name
from servers.launch import ServerThread
from tests.support import MS

pytestmark = pytest.mark.abuse

NEWLINE_TOPIC = "abc\n"


def test_name_rule_refuses_a_trailing_newline():
    """'$' with re.match accepts 'abc\\n'; the one name rule does not."""
    assert is_name("abc") and is_name("a" * 64) and is_name("a.b:c-d_e")
    for bad in ("abc\n", "\nabc", "a b", "", "a" * 65, "é"):
        assert not is_name(bad), repr(bad)


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r.getMessage() for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not bad, bad


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/publish"),
        ("GET", "/poll"),
        ("GET", "/long-poll"),
        ("GET", "/sse"),
        ("GET", "/stream"),
    ],
)
@pytest.mark.parametrize("topic", [NEWLINE_TOPIC, "", "x" * 129, "a b"])
async def test_bad_topic_is_400_bad_topic_on_every_http_route(live, method, path, topic, caplog):
    """The same bad topic gets the same answer everywhere: 400 {"error": "bad_topic"}."""
    async with httpx.AsyncClient(base_url=live.url, trust_env=False, timeout=10) as http:
        r = await http.request(method, path, params={"topic": topic, "timeout": "0.05"}, json=1)
    assert (r.status_code, r.json()["error"]) == (400, "bad_topic"), (path, topic)
    no_tracebacks(caplog)


async def test_missing_topic_is_the_same_422_on_publish_and_poll(live):
    """A missing parameter is a parameter error, 422 invalid_parameter, on both."""
    async with httpx.AsyncClient(base_url=live.url, trust_env=False) as http:
        for method, path in (("POST", "/publish"), ("GET", "/poll")):
            r = await http.request(method, path, json=1)
            assert (r.status_code, r.json()["error"]) == (422, "invalid_parameter"), path


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/ws?topic=abc%0A", "bad_topic"),
        ("/chat?user=ann%0A", "bad_user"),
        ("/whiteboard/ws?board=b%0A&user=ann", "bad_board"),
        ("/whiteboard/ws?board=b&user=ann%0A", "bad_user"),
    ],
)
async def test_sockets_refuse_a_name_with_a_trailing_newline(live, path, error):
    """WebSocket upgrades apply the same rule: 400 before the upgrade."""
    with pytest.raises(InvalidStatus) as info:
        async with connect(live.url.replace("http", "ws", 1) + path):
            pass
    assert info.value.response.status_code == 400
    assert error.encode() in info.value.response.body


def raw_request(server: ServerThread, head: str) -> bytes:
    """Send request headers only (no body) and return what the server answers first."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5 * MS) as sock:
        sock.sendall(head.encode())
        return sock.recv(4096)


@pytest.mark.parametrize(("path", "declared"), [("/echo", 64 << 20), ("/token", 32 << 20)])
def test_a_declared_oversized_body_is_refused_before_it_is_sent(live, path, declared):
    """A Content-Length over the limit gets 413 at once: the server does not wait to read it."""
    head = (
        # Hand-written on purpose: the declared length is a lie the server must refuse.
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    answer = raw_request(live, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"error":"payload_too_large"' in answer


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b"x" * size


def test_a_chunked_echo_body_over_the_limit_is_413(live, caplog):
    """Without Content-Length the body is counted while read, and refused past the limit."""
    caplog.set_level(logging.INFO)
    limit = live.settings.ws_max_message_bytes
    with httpx.Client(base_url=live.url, trust_env=False, timeout=10) as http:
        r = http.post("/echo", content=chunks(8 << 20))
        assert (r.status_code, r.json()["error"]) == (413, "payload_too_large")
        r = http.post("/echo", content=b"y" * limit)
        assert r.status_code == 200 and len(r.content) == limit
    no_tracebacks(caplog)


async def test_token_request_validation_is_unchanged(live):
    """Within the body bound, a bad user is still 422 and a good one gets a token."""
    async with httpx.AsyncClient(base_url=live.url, trust_env=False) as http:
        for body in (b"{}", b'{"user": "a\\n"}', b"not json", b'{"user": "a@b"}'):
            r = await http.post("/token", content=body)
            assert (r.status_code, r.json()["error"]) == (422, "invalid_parameter"), body
        r = await http.post("/token", json={"user": "ann"})
        assert r.status_code == 200 and r.json()["token_type"] == "bearer"
