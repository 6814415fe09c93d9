"""Structured connection logs, and tokens kept out of every log line."""

from __future__ import annotations

import asyncio
import logging

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from feed.settings import SSE_IMPLS
from servers.auth import issue
from servers.launch import ServerProcess
from servers.logs import JSONFormatter, RedactTokens, redact
from tests.support import MS, async_wait_until, wait_until


def test_redact_rewrites_every_token_form():
    """token= and access_token= values are replaced wherever they sit in a query."""
    assert redact("/sse?token=abc.def&topic=t") == "/sse?token=[REDACTED]&topic=t"
    assert redact("/ws?topic=t&access_token=x") == "/ws?topic=t&access_token=[REDACTED]"
    assert redact("/x?TOKEN=y z") == "/x?TOKEN=[REDACTED] z"
    assert redact("/poll?topic=tokens") == "/poll?topic=tokens"


def test_filter_keeps_access_log_argument_positions():
    """uvicorn's access formatter unpacks five args: redaction must keep them in place."""
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", "/sse?token=secret", "1.1", 200),
        None,
    )
    RedactTokens().filter(record)
    assert record.args == ("127.0.0.1:1", "GET", "/sse?token=[REDACTED]", "1.1", 200)
    assert "secret" not in record.getMessage()


async def test_connect_and_disconnect_records(serve, settings, caplog):
    """A WebSocket's life is two records with id, transport, remote, code and duration."""
    caplog.set_level(logging.INFO, logger="pushlab.conn")
    server = serve(settings.replace(auth=True))
    token, _ = issue(server.settings, "alice")
    url = server.url.replace("http", "ws") + f"/ws?topic=t&token={token}"
    async with connect(url) as ws:
        await ws.recv()
    await async_wait_until(
        lambda: any(getattr(r, "pushlab", {}).get("event") == "disconnect" for r in caplog.records),
        5,
        "disconnect record",
    )
    records = [r for r in caplog.records if r.name == "pushlab.conn"]
    connect_rec = next(r.pushlab for r in records if r.pushlab["event"] == "connect")
    gone = next(r.pushlab for r in records if r.pushlab["event"] == "disconnect")
    assert connect_rec["conn_id"] == gone["conn_id"]
    assert gone["transport"] == "ws" and gone["remote"].startswith("127.0.0.1:")
    assert gone["code"] == 1000 and gone["user"] == "alice" and gone["duration_s"] > 0
    line = JSONFormatter().format(next(r for r in records if r.pushlab["event"] == "disconnect"))
    assert orjson.loads(line)["conn_id"] == gone["conn_id"]
    assert all(token not in JSONFormatter().format(r) for r in caplog.records)


async def test_rejections_are_logged_without_the_token(serve, settings, caplog):
    """A refused bad token is logged as a reject with its status, never with the token."""
    caplog.set_level(logging.INFO, logger="pushlab.conn")
    server = serve(settings.replace(auth=True))
    async with httpx.AsyncClient(trust_env=False) as http:
        r = await http.get(f"{server.url}/poll", params={"topic": "t", "token": "bad.tok.en"})
    assert r.status_code == 401
    reject = next(r.pushlab for r in caplog.records if r.pushlab.get("event") == "reject")
    assert reject["status"] == 401 and reject["transport"] == "poll"
    assert all("bad.tok.en" not in JSONFormatter().format(r) for r in caplog.records)


@pytest.mark.parametrize("sse_impl", SSE_IMPLS)
async def test_real_server_log_never_contains_a_token(tmp_path, sse_impl):
    """A subprocess server at log level info: uvicorn's access log shows token=[REDACTED]."""
    proc = ServerProcess(
        env={"PUSHLAB_AUTH": "1", "PUSHLAB_LOG_LEVEL": "info", "PUSHLAB_SSE_IMPL": sse_impl},
        log_path=str(tmp_path / "s.log"),
    ).start()
    try:
        async with httpx.AsyncClient(trust_env=False, base_url=proc.url, timeout=5) as http:
            token = (await http.post("/token", json={"user": "alice"})).json()["access_token"]
            assert (await http.get("/poll", params={"topic": "t", "token": token})).is_success
            await http.get("/poll", params={"topic": "t", "token": token + "x"})  # 401
            await http.get(
                "/poll", params={"topic": "t"}, headers={"Authorization": f"Bearer {token}"}
            )
            async with http.stream("GET", "/sse", params={"topic": "t", "token": token}) as s:
                async for chunk in s.aiter_text():
                    if "ready" in chunk:
                        break
        ws_url = proc.url.replace("http", "ws")
        async with connect(f"{ws_url}/ws?topic=t&token={token}") as ws:
            await ws.recv()
        async with connect(
            f"{ws_url}/ws?topic=t", subprotocols=["pushlab.v1", f"bearer.{token}"]
        ) as ws:  # type: ignore[list-item]
            await ws.recv()
        wait_until(lambda: proc.log().count('"event":"disconnect"') >= 3, 5 * MS, "logs")
    finally:
        proc.stop()
    log = proc.log()
    assert token not in log and token.split(".")[2] not in log
    assert "token=[REDACTED]" in log
    conn_lines = [
        orjson.loads(line) for line in log.splitlines() if '"logger":"pushlab.conn"' in line
    ]
    events = {line["event"] for line in conn_lines}
    assert {"connect", "disconnect", "reject"} <= events
    assert {line["transport"] for line in conn_lines if line["event"] == "disconnect"} >= {
        "ws",
        "sse",
    }
    await asyncio.sleep(0)
