"""A burst published as one run (``Broker.publish_many``, what the ticker does when it is behind)
reaches parked WebSocket, SSE and ``/stream`` clients on real sockets: joined into one write per
connection, still valid framing, every event once and in order, all of it by the publisher.

The run is larger than ``subscriber_buffer``: a run written whole never queues, so a client that
keeps up is not closed for a burst (the per-event buffered path would close it with overflow).
"""

from __future__ import annotations

import asyncio
import json
import re

import msgpack
import pytest
from websockets.asyncio.client import connect

from feed.settings import SSE_IMPLS
from tests.servers.rawsse import RawSSE
from tests.servers.test_metrics import scrape
from tests.servers.test_websocket import LoopBroker
from tests.support import MS, async_wait_until

N = 50


async def publish_run(broker: LoopBroker, n: int = N) -> None:
    """``publish_many`` inside the server's loop: one run of ``n`` events on topic t."""
    future = asyncio.run_coroutine_threadsafe(broker.publish_many("t", list(range(n))), broker.loop)
    events = await asyncio.wrap_future(future)
    assert [e.seq for e in events] == list(range(1, n + 1))


async def all_direct(url: str, transport: str, n: int = N) -> None:
    """Every event counted as sent, and every one written by the publisher (no task woken)."""
    label = (("transport", transport),)

    async def settled() -> bool:
        m = await scrape(url)
        return m.get(("pushlab_events_sent_total", label), 0.0) == n

    await async_wait_until(settled, 5, f"{n} {transport} events counted")
    m = await scrape(url)
    assert m.get(("pushlab_events_direct_total", label), 0.0) == n


@pytest.mark.parametrize("impl", ["pushlab-sansio", "wsproto"])
@pytest.mark.parametrize("fmt", ["json", "msgpack"])
async def test_websocket_gets_a_run_in_order(serve, settings, impl, fmt):
    broker = LoopBroker(settings.history)
    server = serve(settings.replace(ws_impl=impl, subscriber_buffer=5), broker=broker)
    async with connect(f"{server.ws_url}/ws?topic=t&format={fmt}") as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        await publish_run(broker)
        frames = [await asyncio.wait_for(ws.recv(), 5 * MS) for _ in range(N)]
        await all_direct(server.url, "ws")
    if fmt == "msgpack":
        assert all(isinstance(f, bytes) for f in frames)
        seqs = [msgpack.unpackb(f)["seq"] for f in frames]
    else:
        seqs = [json.loads(f)["seq"] for f in frames]
    assert seqs == list(range(1, N + 1))


@pytest.mark.parametrize("impl", SSE_IMPLS)
async def test_sse_gets_a_run_in_order(serve, settings, impl):
    broker = LoopBroker(settings.history)
    server = serve(settings.replace(sse_impl=impl, subscriber_buffer=5), broker=broker)
    sse = await RawSSE.open(server.port, "topic=t")
    try:
        await sse.read_until(b"event: ready")
        await publish_run(broker)
        await sse.read_until(f"id: {N}\n".encode())  # read_chunk checks every chunk's framing
        assert sse.ids() == list(range(1, N + 1))
        await all_direct(server.url, "sse")
    finally:
        sse.close()


async def test_stream_gets_a_run_in_order(serve, settings):
    broker = LoopBroker(settings.history)
    server = serve(settings.replace(subscriber_buffer=5), broker=broker)
    raw = await RawSSE.open(
        server.port, "topic=t", path="/stream", headers={"Accept": "application/x-ndjson"}
    )
    try:
        await raw.read_until(b'"type":"ready"')
        await publish_run(broker)
        await raw.read_until(f'"seq":{N},'.encode())
        seqs = [int(m) for m in re.findall(rb'^\{"topic":"t","seq":(\d+),', raw.body, re.M)]
        assert seqs == list(range(1, N + 1))
        await all_direct(server.url, "stream")
    finally:
        raw.close()
