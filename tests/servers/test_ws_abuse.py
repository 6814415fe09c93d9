"""A hostile or broken WebSocket peer against the real server: each gets its documented answer,
the server stays bounded, and the log shows the peer's mistake at INFO, never an ERROR or a
traceback. Short forms here; ``PUSHLAB_TEST_FULL=1`` runs the long ones."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from servers.fastpath.ws_protocol import LeanSansIOProtocol
from servers.launch import ServerProcess
from tests.servers.rawws import OP_CLOSE, OP_PING, OP_TEXT, RawWS, frame
from tests.support import FULL, MS, async_wait_until, wait_until

pytestmark = pytest.mark.abuse


def _bad_records(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.levelno >= logging.ERROR or r.exc_info]


async def test_invalid_utf8_closes_1007_and_logs_the_reason_without_a_traceback(live, caplog):
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    raw = await RawWS.connect(live.port, "/ws?topic=t")
    await raw.recv()  # ready
    raw.send(OP_TEXT, b'{"type":"ping","id":"\xff\xfe"}')
    assert await raw.close_code(5 * MS) == 1007
    raw.abort()
    # The server logs before it writes the close, so the record is there already.
    assert _bad_records(caplog.records) == []
    assert any(
        "closed 1007: invalid UTF-8" in r.getMessage() and r.levelno == logging.INFO
        for r in caplog.records
    )


async def test_unsupported_version_gets_426_with_the_version_spoken(live):
    """RFC 6455 §4.2.2: not a bare 400, but 426 and ``Sec-WebSocket-Version: 13``."""
    raw = await RawWS.connect(live.port, "/ws?topic=t", {"Sec-WebSocket-Version": "12"})
    assert raw.status == 426
    assert raw.headers["sec-websocket-version"] == "13"
    assert b"Sec-WebSocket-Version" in raw.body
    raw.abort()


async def test_pings_without_reading_the_pongs_do_not_grow_the_server(live):
    """A peer that sends pings and never reads: the server keeps reading (and answering the
    last ping once the peer reads again) but holds no pong per ping. Before, every ping left a
    127-byte pong in the socket's write buffer (200k pings: +23 MB)."""
    pings = 200_000 if FULL else 40_000
    raw = await RawWS.connect(live.port, "/echo", rcvbuf=4096)
    try:
        proto, backlog = await _backlog_after_pings(live, raw, pings)
    finally:
        raw.abort()
    # Wait until the server has seen the reset: stopping it while an answered close sits unread
    # in the write buffer waits out uvicorn's graceful-shutdown timeout (a slow peer's deadline
    # is not what this test is about).
    await async_wait_until(lambda: proto.disconnected, 5, "the reset seen by the server")
    # Pongs are held from the first write that takes the buffer over its high-water mark
    # (64 KiB); that write carries the pongs of one read (at most 256 KiB of pings). Before,
    # the backlog grew by 127 bytes per ping.
    assert backlog <= 512 * 1024, backlog


async def _backlog_after_pings(live, raw: RawWS, pings: int) -> tuple[LeanSansIOProtocol, int]:
    """Send ``pings`` pings and a close: the server's protocol, and its socket's write backlog
    once all are read."""
    ping = frame(OP_PING, b"p" * 125)  # the largest control frame
    for _ in range(pings // 1000):
        raw.writer.write(ping * 1000)
        await raw.writer.drain()
    raw.send(OP_CLOSE, b"\x03\xe8")  # queued behind the pings: read means all pings read
    port = raw.writer.get_extra_info("sockname")[1]
    assert live.uvicorn is not None
    conns = live.uvicorn.server_state.connections

    def closing() -> LeanSansIOProtocol | None:
        for proto in list(conns):
            if (
                isinstance(proto, LeanSansIOProtocol)
                and proto.client is not None
                and proto.client[1] == port
                and proto.conn.close_rcvd is not None
            ):
                return proto
        return None

    await async_wait_until(lambda: closing() is not None, 30, "every ping read")
    proto = closing()
    assert proto is not None
    return proto, int(proto.transport.get_write_buffer_size())


def test_refused_upgrades_are_info_with_their_reason_never_an_error(tmp_path):
    """Every kind of refused upgrade against ``python -m servers`` (uvicorn used to add ERROR
    "ASGI callable returned without completing handshake" to each)."""
    proc = ServerProcess(
        env={"PUSHLAB_LOG_LEVEL": "info", "PUSHLAB_ORIGINS": "https://app.example"},
        log_path=str(tmp_path / "server.log"),
    ).start()
    refusals = {  # path, extra headers -> status
        ("/ws?topic=a%20b", ()): 400,
        ("/ws?topic=t&since=x", ()): 400,
        ("/ws?topic=t", (("Origin", "https://evil.example"),)): 403,
        ("/chat", ()): 400,
        ("/whiteboard/ws?board=", ()): 400,
        ("/ws?topic=t", (("Sec-WebSocket-Version", "8"),)): 426,
    }

    async def refuse_all() -> None:
        for (path, headers), status in refusals.items():
            raw = await RawWS.connect(proc.port, path, dict(headers))
            assert raw.status == status, (path, raw.status, raw.body)
            raw.abort()

    try:
        asyncio.run(refuse_all())
        wait_until(lambda: proc.log().count('"event":"reject"') >= 5, 5, "reject records")
        wait_until(lambda: "WebSocket upgrade refused (426)" in proc.log(), 5, "426 record")
    finally:
        proc.stop()
    lines = [orjson.loads(line) for line in proc.log().splitlines() if line.startswith("{")]
    assert [line for line in lines if line["level"] in ("error", "critical")] == []
    assert "Traceback" not in proc.log()
    rejects = [line for line in lines if line.get("event") == "reject"]
    assert {line["level"] for line in rejects} == {"info"}
    assert sorted(line["status"] for line in rejects) == [400, 400, 400, 400, 403]
    assert all(line["error"] and line["detail"] for line in rejects), rejects
