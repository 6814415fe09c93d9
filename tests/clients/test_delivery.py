"""Every transport delivers the published sequence exactly once, across cuts and restarts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import pytest

from clients import CLIENTS, FeedClient, Received, RetryPolicy
from feed.events import Gap
from feed.memory import MemoryBroker
from feed.settings import Settings
from servers.launch import ServerThread
from tests.support import MS, async_wait_until, each_sse_impl

# "sse-stream": the SSE client on the lean wire the perf generators use (clients/sse_wire.py).
TRANSPORTS = [*sorted(CLIENTS), "sse-stream"]
FAST_RETRY = RetryPolicy(base_s=0.02, cap_s=0.2)


@pytest.fixture
def settings(sse_impl: str, transport: str) -> Settings:
    """The suite's defaults (ticker off); for the WebTransport client, HTTP/3 on too."""
    wt_port = 0 if transport == "wt" else -1
    return Settings.from_env({}, ticker_rate=0, sse_impl=sse_impl, webtransport_port=wt_port)


def make(transport: str, server: ServerThread, topic: str, **kwargs: Any) -> FeedClient:
    extra: dict[str, Any] = {"retry": FAST_RETRY}
    if transport == "poll":
        extra["interval_s"] = 0.02
    if transport == "long-poll":
        extra["wait_s"] = 2.0
    if transport == "sse-stream":
        transport, extra["wire"] = "sse", "stream"
    return CLIENTS[transport](server.url, topic, **(extra | kwargs))


class Collector:
    """Runs a client in a task and keeps what it yields."""

    def __init__(self, client: FeedClient) -> None:
        self.client = client
        self.items: list[Received | Gap] = []
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        gen: AsyncGenerator[Any, None] = self.client.events()
        async with contextlib.aclosing(gen):
            async for item in gen:
                self.items.append(item)

    @property
    def seqs(self) -> list[int]:
        return [i.event.seq for i in self.items if isinstance(i, Received)]

    async def until(self, n: int, what: str = "events") -> None:
        await async_wait_until(lambda: len(self.seqs) >= n or self.task.done(), 15, what)
        if self.task.done():
            self.task.result()

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def publish(http: httpx.AsyncClient, url: str, topic: str, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        r = await http.post(f"{url}/publish", params={"topic": topic}, json={"i": i})
        assert r.status_code == 200, r.text


async def ready(client: FeedClient) -> None:
    """Wait until the client knows its cursor (its first connection is established)."""
    await async_wait_until(lambda: client.last_seq is not None, 10, "first connection")


@pytest.fixture
async def http() -> AsyncGenerator[httpx.AsyncClient, None]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.mark.parametrize(("transport", "sse_impl"), each_sse_impl(TRANSPORTS))
async def test_sequence_arrives_in_order_exactly_once(transport, live, http):
    """Events published after subscribing arrive in order, none lost or duplicated."""
    c = Collector(make(transport, live, "t"))
    await ready(c.client)
    await publish(http, live.url, "t", 200)
    await c.until(200)
    await c.close()
    assert c.seqs == list(range(1, 201))
    assert c.client.counters.duplicates == 0
    assert c.client.counters.silent_gaps == 0


@pytest.mark.parametrize(("transport", "sse_impl"), each_sse_impl(TRANSPORTS))
async def test_resume_after_server_side_close(transport, serve, settings, http):
    """The server kicks every stream mid-sequence; the client resumes with nothing lost."""
    live = serve(settings.replace(admin=True))
    c = Collector(make(transport, live, "t"))
    await ready(c.client)
    await publish(http, live.url, "t", 50)
    await c.until(20)
    await http.post(f"{live.url}/admin/kick", params={"topic": "t"})
    await publish(http, live.url, "t", 50, start=50)
    await c.until(100)
    await c.close()
    assert c.seqs == list(range(1, 101))
    assert c.client.counters.silent_gaps == 0


@pytest.mark.parametrize(("transport", "sse_impl"), each_sse_impl(TRANSPORTS))
async def test_resume_after_client_side_drop(transport, live, http):
    """The client's socket is cut mid-stream, repeatedly; the union is still exact."""
    c = Collector(make(transport, live, "t"))
    await ready(c.client)
    for round_ in range(5):
        await publish(http, live.url, "t", 30, start=30 * round_)
        await c.until(30 * round_ + 10)
        c.client.drop()
    await c.until(150)
    await c.close()
    assert c.seqs == list(range(1, 151))
    assert c.client.counters.connections >= 2
    assert c.client.counters.silent_gaps == 0


@pytest.mark.parametrize(("transport", "sse_impl"), each_sse_impl(TRANSPORTS))
async def test_resume_survives_server_restart(transport, serve, settings, http):
    """A restart (same history, injected broker) is a reconnect and a resume, not a loss."""
    server = serve(settings, broker=MemoryBroker(settings.history))
    c = Collector(make(transport, server, "t"))
    await ready(c.client)
    await publish(http, server.url, "t", 40)
    await c.until(40)
    await asyncio.to_thread(server.restart)
    await publish(http, server.url, "t", 40, start=40)
    await c.until(80)
    await c.close()
    assert c.seqs == list(range(1, 81))


@pytest.mark.parametrize(("transport", "sse_impl"), each_sse_impl(TRANSPORTS))
async def test_resume_past_history_is_signalled(transport, serve, settings, http):
    """Resuming from a point older than the history yields an explicit recovered=false gap."""
    server = serve(settings.replace(history=10))
    await publish(http, server.url, "t", 30)
    c = Collector(make(transport, server, "t", since=5))
    await c.until(10)
    await c.close()
    gaps = [i for i in c.items if isinstance(i, Gap)]
    assert len(gaps) == 1
    assert (gaps[0].reason, gaps[0].oldest_seq, gaps[0].since) == ("expired", 21, 5)
    assert isinstance(c.items[0], Gap)
    assert c.seqs == list(range(21, 31))
    assert c.client.counters.silent_gaps == 0


@pytest.mark.parametrize(("transport", "sse_impl"), each_sse_impl(TRANSPORTS))
async def test_cursor_ahead_of_server_is_signalled(transport, live, http):
    """A cursor newer than anything published (a restarted in-memory server) is reported."""
    await publish(http, live.url, "t", 3)
    c = Collector(make(transport, live, "t", since=500))
    await c.until(3)
    await c.close()
    gaps = [i for i in c.items if isinstance(i, Gap)]
    assert [g.reason for g in gaps] == ["ahead"]
    assert c.seqs == [1, 2, 3]


@pytest.mark.parametrize(("transport", "sse_impl"), each_sse_impl(TRANSPORTS))
async def test_topics_stay_apart(transport, live, http):
    """A subscriber of one topic never sees another topic's events."""
    a, b = Collector(make(transport, live, "a")), Collector(make(transport, live, "b"))
    await ready(a.client)
    await ready(b.client)
    await publish(http, live.url, "a", 20)
    await publish(http, live.url, "b", 5)
    await a.until(20)
    await b.until(5)
    await a.close()
    await b.close()
    assert {i.event.topic for i in a.items if isinstance(i, Received)} == {"a"}
    assert {i.event.topic for i in b.items if isinstance(i, Received)} == {"b"}
    assert (a.seqs, b.seqs) == (list(range(1, 21)), list(range(1, 6)))


@pytest.mark.parametrize(("transport", "sse_impl"), each_sse_impl(TRANSPORTS))
async def test_fatal_error_surfaces(transport, live):
    """A 4xx answer (bad topic) is not retried forever: it surfaces."""
    from websockets.exceptions import InvalidStatus

    from feed.exceptions import FatalTransportError

    c = Collector(make(transport, live, "bad topic!"))
    with pytest.raises((FatalTransportError, InvalidStatus)):
        await asyncio.wait_for(c.task, 10 * MS)
