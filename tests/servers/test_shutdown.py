"""Graceful shutdown of a real server process on SIGTERM, and resume across the restart.

What "without loss" means here: with the in-memory broker and no snapshot, every event published
before SIGTERM is delivered (the drain sends buffered events before saying goodbye), and after the
restart seqs begin again at 1, which clients are told explicitly with an ``ahead`` gap. With
``PUSHLAB_SNAPSHOT_PATH`` the history survives the restart, seqs continue, and each client's
union of events is exactly 1..N with no gap at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from clients import CLIENTS, Received
from feed.events import Gap
from feed.settings import SSE_IMPLS
from feed.wire.http1 import sse_request
from servers.launch import ServerProcess
from tests.clients.test_delivery import FAST_RETRY, Collector
from tests.servers.rawws import RawWS
from tests.support import MS, async_wait_until

TRANSPORTS = sorted(CLIENTS)


async def publish(url: str, n: int, start: int = 0) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        for i in range(start, start + n):
            r = await http.post(f"{url}/publish", params={"topic": "t"}, json={"i": i})
            assert r.status_code == 200


async def exited(proc: ServerProcess, timeout: float) -> float:
    t0 = time.monotonic()
    await asyncio.to_thread(proc.proc.wait, timeout)
    return time.monotonic() - t0


@pytest.mark.parametrize("sse_impl", SSE_IMPLS)
async def test_sigterm_says_goodbye_on_every_transport(tmp_path, sse_impl):
    """WS gets 1001, SSE ends with event: end (shutdown), /stream with an end line, a long poll
    answers 204 at once."""
    env = {"PUSHLAB_SHUTDOWN_TIMEOUT_S": "5", "PUSHLAB_SSE_IMPL": sse_impl}
    proc = ServerProcess(env=env).start()
    try:
        ws = await connect(proc.url.replace("http", "ws") + "/ws?topic=t")
        await ws.recv()
        http = httpx.AsyncClient(trust_env=False, timeout=30)
        sse = await http.send(
            http.build_request("GET", f"{proc.url}/sse", params={"topic": "t"}), stream=True
        )
        lines = sse.aiter_lines()
        while "ready" not in await anext(lines):
            pass
        ndjson = await http.send(
            http.build_request("GET", f"{proc.url}/stream", params={"topic": "t"}), stream=True
        )
        ndjson_lines = ndjson.aiter_lines()
        assert '"ready"' in await anext(ndjson_lines)
        poll = asyncio.ensure_future(
            http.get(f"{proc.url}/long-poll", params={"topic": "t", "timeout": "25"})
        )

        async def waiting() -> bool:
            h = (await http.get(f"{proc.url}/healthz")).json()
            return bool(h["connections"] == {"ws": 1, "sse": 1, "stream": 1, "long-poll": 1})

        await async_wait_until(waiting, 10, "four live connections")
        t0 = time.monotonic()
        proc.terminate()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5 * MS)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "shutdown")
        rest = [line async for line in lines]
        assert "event: end" in rest and 'data: {"type":"end","reason":"shutdown"}' in rest
        assert [line async for line in ndjson_lines] == ['{"type":"end","reason":"shutdown"}']
        answer = await asyncio.wait_for(poll, 5 * MS)
        assert answer.status_code == 204 and "pushlab-cursor" in answer.headers
        took = time.monotonic() - t0
        assert took < 1.0 * MS, f"goodbyes took {took:.3f} s"
        assert await exited(proc, 10 * MS) < 5
        # uvicorn re-raises the captured SIGTERM after its clean shutdown.
        assert proc.proc.returncode in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in proc.log()
        await http.aclose()
        await ws.close()
    finally:
        proc.stop()


@pytest.mark.parametrize("sse_impl", SSE_IMPLS)
async def test_exit_is_bounded_when_a_peer_never_leaves(sse_impl):
    """New connections are refused at once; an SSE reader that stopped reading (its goodbye
    cannot be written) cannot hold the process past shutdown_timeout_s."""
    env = {"PUSHLAB_SHUTDOWN_TIMEOUT_S": "1", "PUSHLAB_SSE_IMPL": sse_impl}
    proc = ServerProcess(env=env).start()
    sock = socket.socket()
    try:
        raw = await RawWS.connect(proc.port, "/ws?topic=t")
        assert raw.status == 101
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", proc.port))
        sock.sendall(sse_request("x", {"topic": "t"}))
        async with httpx.AsyncClient(trust_env=False) as http:
            for _ in range(140):  # ~8 MB: the stream's writes block
                await http.post(f"{proc.url}/publish", params={"topic": "t"}, json="x" * 60_000)
        t0 = time.monotonic()
        proc.terminate()

        async def refused() -> bool:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", proc.port)
            except (ConnectionRefusedError, ConnectionResetError):
                # Reset: the listener closed while this connection sat in its accept queue.
                return True
            w.close()
            with contextlib.suppress(OSError):
                await w.wait_closed()  # plain TCP: no close_notify to wait for
            return False

        # Stops accepting at once, while still draining the stuck peers.
        await async_wait_until(refused, 0.8, "listener closed")
        assert proc.proc.poll() is None, "already exited: the drain window was not observed"
        await asyncio.to_thread(proc.proc.wait, 10 * MS)
        took = time.monotonic() - t0
        raw.abort()
        print(f"exit with stuck peers after {took:.3f} s (timeout 1 s)")
        assert 1.0 - 0.1 <= took <= 1.0 + 1.0 * MS
    finally:
        sock.close()
        proc.stop()


@pytest.mark.parametrize("sse_impl", SSE_IMPLS)
@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "memory-only"])
async def test_clients_resume_across_sigterm_and_restart(tmp_path, snapshot, sse_impl):
    """Every transport's client reconnects after a SIGTERM restart on the same port."""
    env = {"PUSHLAB_SHUTDOWN_TIMEOUT_S": "3", "PUSHLAB_SSE_IMPL": sse_impl}
    env["PUSHLAB_WEBTRANSPORT_PORT"] = "0"  # for the wt client (its port is found per connect)
    if snapshot:
        env["PUSHLAB_SNAPSHOT_PATH"] = str(tmp_path / "history.jsonl")
    proc = ServerProcess(env=env, log_path=tmp_path / "server.log").start()
    collectors = []
    try:
        for transport in TRANSPORTS:
            extra = {"poll": {"interval_s": 0.02}, "long-poll": {"wait_s": 2.0}}.get(transport, {})
            client = CLIENTS[transport](proc.url, "t", retry=FAST_RETRY, **extra)
            collectors.append(Collector(client))
        for c in collectors:
            await async_wait_until(lambda c=c: c.client.last_seq is not None, 10, "connected")
        await publish(proc.url, 30)
        for c in collectors:
            await c.until(30)
        proc.terminate()
        await exited(proc, 10 * MS)
        proc.proc = None
        proc.start()
        if not snapshot:
            # Without a snapshot seqs restart at 1, so a cursor is only recognised as "ahead"
            # while the new server is behind it: wait for every client to be told before
            # publishing (docs/protocol.md, "Restarts", explains the collision window).
            for c in collectors:
                await async_wait_until(
                    lambda c=c: any(isinstance(i, Gap) for i in c.items), 15, "the ahead gap"
                )
        await publish(proc.url, 30, start=30)
        for c in collectors:
            await c.until(60 if snapshot else 30 + 30)
    finally:
        for c in collectors:
            await c.close()
        proc.stop()
    for c in collectors:
        name = c.client.transport
        data = [i.event.data["i"] for i in c.items if isinstance(i, Received)]
        assert data == list(range(60)), name  # every published payload, once, in order
        assert c.client.counters.silent_gaps == 0, name
        gaps = [i for i in c.items if isinstance(i, Gap)]
        if snapshot:
            assert c.seqs == list(range(1, 61)), name
            assert gaps == [], name
        else:
            assert c.seqs == list(range(1, 31)) * 2, name
            assert [g.reason for g in gaps] == ["ahead"], name


async def test_socket_waiting_for_first_message_auth_gets_1001(serve, settings):
    """A socket still owing its auth message is told 1001 at shutdown, not left to time out."""
    server = serve(settings.replace(auth=True, auth_first_message_s=30))
    async with connect(server.url.replace("http", "ws") + "/ws?topic=t") as ws:
        stopping = asyncio.ensure_future(asyncio.to_thread(server.stop))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5 * MS)
        await stopping
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
