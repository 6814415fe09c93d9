"""Request heads: deadline, size limits and the cap on pending connections, on a real server."""

from __future__ import annotations

import asyncio
import logging

import pytest
import uvicorn

from feed.fdlimit import raise_nofile
from feed.settings import SSE_IMPLS
from feed.wire.http1 import END_OF_HEAD, parse_response_head
from servers.fastpath.http_protocol import (
    EVICT_AFTER_S,
    MAX_LINE_BYTES,
    UVICORN_VERSION,
    GuardedHttpToolsProtocol,
)
from servers.launch import ServerProcess
from servers.runner import build_config
from tests.servers.socktable import established
from tests.support import FULL, MS, async_wait_until, require

# The requests here are hand-written on purpose: oversized, endless or malformed heads, which the
# builder in feed.wire.http1 never produces.
UPGRADE = (
    b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def answer(port: int, request: bytes) -> bytes:
    """Everything the server writes before closing, after ``request``."""
    reader, writer = await connect(port)
    writer.write(request)
    try:
        return await asyncio.wait_for(reader.read(), 10 * MS)
    finally:
        writer.close()


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


def test_uvicorn_is_the_version_the_protocol_was_written_for():
    """servers/fastpath/http_protocol.py overrides uvicorn internals: re-check on an upgrade."""
    assert uvicorn.__version__ == UVICORN_VERSION, (
        "uvicorn changed: re-read uvicorn/protocols/http/httptools_impl.py against "
        "servers/fastpath/http_protocol.py, then update UVICORN_VERSION"
    )


def test_every_server_gets_the_guarded_protocol(settings):
    """build_config (pushlab serve, tests, launchers) selects the guarded protocol."""
    config = build_config(settings, app=None, log_config=None)  # type: ignore[arg-type]
    assert isinstance(config.http, type) and issubclass(config.http, GuardedHttpToolsProtocol)
    assert config.timeout_keep_alive == settings.http_idle_timeout_s


big = b"x" * (MAX_LINE_BYTES + 1)
CASES = {
    "100 KB header": (
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 100_000 + b"\r\n\r\n",
        431,
    ),
    "head over the cap": (
        b"GET /healthz HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-%d: %s\r\n" % (i, b"y" * 7000) for i in range(3)),
        431,
    ),
    "1,100 headers": (
        b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(1100)) + b"\r\n",
        431,
    ),
    "10 KB target": (b"GET /healthz?" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    "malformed": (b"GET\x01 / HTTP/1.1\r\n\r\n", 400),
    "upgrade, 10 KB URL": (
        b"GET /ws?" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: a\r\n" + UPGRADE + b"\r\n",
        414,
    ),
    "upgrade, 9 KB header line": (
        b"GET /ws HTTP/1.1\r\nHost: a\r\n" + UPGRADE + b"X-Big: " + big + b"\r\n\r\n",
        431,
    ),
    "upgrade, 200 headers": (
        b"GET /ws HTTP/1.1\r\nHost: a\r\n"
        + UPGRADE
        + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
        + b"\r\n",
        431,
    ),
}


@pytest.mark.abuse
@pytest.mark.parametrize("case", list(CASES))
async def test_oversized_or_malformed_head_is_answered_and_closed(live, caplog, case):
    """Each oversized or malformed head gets its status, a reason and connection: close."""
    request, status = CASES[case]
    reply = await answer(live.port, request)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), reply[:200]
    assert b"connection: close" in head.lower()
    assert body, "no reason in the body"
    no_tracebacks(caplog)


@pytest.mark.abuse
async def test_unterminated_header_value_is_cut_off(live):
    """A header value that never ends is refused after the head limit, not buffered whole."""
    reader, writer = await connect(live.port)
    reply_task = asyncio.create_task(reader.read())
    writer.write(b"GET /healthz HTTP/1.1\r\nX-Endless: ")
    sent = 0
    chunk = b"v" * 65_536
    while sent < 32 * 1024 * 1024 and not reply_task.done():
        writer.write(chunk)
        await writer.drain()
        sent += len(chunk)
        # drain() does not yield while the server keeps reading: let the reply task see EOF.
        await asyncio.sleep(0)
    reply = await asyncio.wait_for(reply_task, 10 * MS)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:200]
    assert sent < 8 * 1024 * 1024, f"the server read {sent} bytes of one header"


@pytest.mark.abuse
async def test_slow_and_silent_connections_are_closed_at_the_deadline(serve, settings, caplog):
    """Trickling and silent connections get 408 and are closed; the socket table empties."""
    trickling, silent = (500, 100) if FULL else (50, 20)
    raise_nofile()  # both ends of every connection are in this process
    timeout = 1.0 * MS
    server = serve(settings.replace(http_header_timeout_s=timeout))
    peers: list[asyncio.StreamWriter] = []

    async def trickle() -> bytes:
        reader, writer = await connect(server.port)
        peers.append(writer)
        reply = asyncio.create_task(reader.read())
        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"s" * 10_000:
            if reply.done():
                break
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)
        return await asyncio.wait_for(reply, 10 * MS)

    async def sit() -> bytes:
        reader, writer = await connect(server.port)
        peers.append(writer)
        return await asyncio.wait_for(reader.read(), 10 * MS + timeout)

    loop = asyncio.get_running_loop()
    start = loop.time()
    replies = await asyncio.gather(
        *[trickle() for _ in range(trickling)], *[sit() for _ in range(silent)]
    )
    elapsed = loop.time() - start
    assert all(r.startswith(b"HTTP/1.1 408 ") for r in replies), {r[:40] for r in replies}
    ports = {w.get_extra_info("sockname")[1] for w in peers}
    await async_wait_until(
        lambda: not ports & established(server.port), what="server sockets closed"
    )
    assert elapsed < timeout + 5 * MS
    for w in peers:
        w.close()
    no_tracebacks(caplog)


@pytest.mark.abuse
async def test_pending_cap_closes_the_oldest_first(serve, settings):
    """Beyond http_max_pending, the longest-waiting connection is closed 503; newcomers get in.
    A burst is not evicted: connections younger than EVICT_AFTER_S stay over the cap."""
    server = serve(settings.replace(http_max_pending=5, http_header_timeout_s=60))
    first = [await connect(server.port) for _ in range(5)]
    # Our own peer ports, not a count: on a busy machine another program's client socket can hold
    # the server's port number as its local port and would show up in the table too.
    ours = {writer.get_extra_info("sockname")[1] for _, writer in first}
    await async_wait_until(lambda: ours <= established(server.port), what="5 accepted")
    await asyncio.sleep(EVICT_AFTER_S)  # the age a pending connection must reach to be evicted
    reply = await answer(
        server.port, b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:100]
    oldest = await asyncio.wait_for(first[0][0].read(), 5 * MS)
    assert oldest.startswith(b"HTTP/1.1 503 "), oldest[:100]
    assert not first[1][0].at_eof()
    for _, writer in first:
        writer.close()


async def test_a_burst_over_the_pending_cap_is_served(serve, settings):
    """20 connections opened at once under a cap of 5 pending are all served: none waited long."""
    server = serve(settings.replace(http_max_pending=5))
    opened = [await connect(server.port) for _ in range(20)]
    for _, writer in opened:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    replies = await asyncio.gather(*[asyncio.wait_for(r.read(), 5 * MS) for r, _ in opened])
    for _, writer in opened:
        writer.close()
    assert all(r.startswith(b"HTTP/1.1 200 ") for r in replies), {r[:30] for r in replies}


async def test_idle_keep_alive_connection_is_closed(serve, settings):
    """A connection that sends nothing after its response is closed (http_idle_timeout_s)."""
    server = serve(settings.replace(http_idle_timeout_s=0.3 * MS))
    reader, writer = await connect(server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    rest = await asyncio.wait_for(reader.read(), 5 * MS)
    assert rest.startswith(b"HTTP/1.1 200 ")
    assert b"408" not in rest, "an idle connection is not a late head"
    writer.close()


@pytest.mark.abuse
async def test_second_head_on_a_keep_alive_connection_has_a_deadline(serve, settings):
    """The head of a later request is timed from its first byte, like the first one."""
    server = serve(settings.replace(http_header_timeout_s=0.5 * MS, http_idle_timeout_s=60))
    reader, writer = await connect(server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    head = parse_response_head(await asyncio.wait_for(reader.readuntil(END_OF_HEAD), 5 * MS))
    await reader.readexactly(int(head.headers["content-length"]))
    writer.write(b"GET /healthz HT")
    rest = await asyncio.wait_for(reader.read(), 5 * MS)
    assert rest.startswith(b"HTTP/1.1 408 "), rest[:100]
    writer.close()


@pytest.mark.abuse
async def test_connections_at_the_fd_limit_are_answered_and_counted():
    """Under a 128-descriptor limit, connections beyond it get 503 and a WARNING with a count."""
    prlimit = require("prlimit", "runs the server under a low open-file limit")
    server = ServerProcess(
        env={"PUSHLAB_HTTP_HEADER_TIMEOUT_S": "60"}, prefix=[prlimit, "--nofile=128"]
    ).start()
    try:
        opened = [await connect(server.port) for _ in range(160)]
        replies = await asyncio.gather(
            *[asyncio.wait_for(r.read(), 2 * MS) for r, _ in opened],
            return_exceptions=True,
        )
        # Those admitted wait for their head (TimeoutError here); those past the cap are
        # answered 503. Only a burst faster than the event loop reaches libuv's silent close
        # at the limit itself (b"" here), after the cap has answered some.
        answered = [r for r in replies if isinstance(r, bytes) and r]
        assert answered and all(r.startswith(b"HTTP/1.1 503 ") for r in answered), replies[:3]
        for _, writer in opened:
            writer.close()

        async def served() -> bool:
            request = b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"
            try:
                return (await answer(server.port, request)).startswith(b"HTTP/1.1 200 ")
            except ConnectionResetError:  # refused at the cap with the request unread
                return False

        await async_wait_until(served, 10, "served again once the connections closed")
    finally:
        server.stop()
    log = server.log()
    assert "connections at the open-file limit" in log and "refused so far" in log, log[-2000:]
    assert "Traceback" not in log


@pytest.mark.abuse
@pytest.mark.parametrize("sse_impl", SSE_IMPLS)
async def test_oversized_pipelined_head_during_a_stream_closes_it_cleanly(live):
    """A bad head pipelined behind an SSE stream ends the connection; no 431 inside the stream."""
    reader, writer = await connect(live.port)
    writer.write(b"GET /sse?topic=t HTTP/1.1\r\nHost: a\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"event: ready"), 5 * MS)
    writer.write(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"x" * (MAX_LINE_BYTES + 10) + b"\r\n\r\n")
    rest = await asyncio.wait_for(reader.read(), 5 * MS)
    writer.close()
    assert b"HTTP/1.1" not in rest, rest[:200]
