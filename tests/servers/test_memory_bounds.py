"""Memory bounds against a real server: byte-capped history, the topic cap, reclamation."""

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from feed.history import EVENT_OVERHEAD
from servers.auth import issue
from tests.redis_support import SHARED_URL, require_redis
from tests.servers.rawsse import RawSSE
from tests.support import FULL, MS, async_wait_until, each_sse_impl

pytestmark = pytest.mark.abuse


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Server log records carrying a traceback ("Exception in ASGI application", a task's
    exception never retrieved...)."""
    return [r.getMessage() for r in caplog.records if r.exc_info]


async def broker_stats(client: httpx.AsyncClient) -> dict:
    return (await client.get("/healthz")).json()["broker"]


async def test_large_publishes_stay_under_the_byte_cap(serve, settings):
    """Many 32 KB events: held bytes stay under the cap, and the newest are all readable."""
    cap = 1024 * 1024
    server = serve(settings.replace(history_bytes=cap, history_total_bytes=cap))
    blob = "x" * 32 * 1024
    count = 600 if FULL else 80
    async with httpx.AsyncClient(base_url=server.url, timeout=10 * MS) as c:
        for _ in range(count):
            (await c.post("/publish", params={"topic": "big"}, json=blob)).raise_for_status()
        stats = await broker_stats(c)
        assert 0 < stats["history_bytes"] <= cap
        body = (await c.get("/poll", params={"topic": "big", "since": 0})).json()
    seqs = [e["seq"] for e in body["events"]]
    # Every event is charged ~3 x 32 KB + overhead: about ten fit in 1 MiB, the newest ones.
    assert seqs == list(range(count - len(seqs) + 1, count + 1))
    assert cap // (3 * len(blob) + 3 * 64 + EVENT_OVERHEAD) - 1 <= len(seqs) <= 11
    assert body["gap"]["reason"] == "expired" and body["gap"]["resume_after"] == seqs[0] - 1


async def hold(server, topics, query=""):
    """Open an SSE stream on each topic: a subscriber holds it."""
    streams = [await RawSSE.open(server.port, f"topic={t}{query}") for t in topics]
    for s in streams:
        assert s.status == 200
        await s.read_until(b"event: ready")
    return streams


async def at_the_cap(transport, server):
    """(status, error code or None) of a request for a new topic."""
    if transport == "ws":
        with pytest.raises(InvalidStatus) as err:
            async with connect(f"ws://127.0.0.1:{server.port}/ws?topic=new"):
                pass
        return err.value.response.status_code, json.loads(err.value.response.body)["error"]
    async with httpx.AsyncClient(base_url=server.url, timeout=10 * MS) as c:
        if transport == "publish":
            r = await c.post("/publish", params={"topic": "new"}, json=1)
        else:
            path = {"sse": "/sse", "long-poll": "/long-poll", "poll": "/poll"}.get(
                transport, "/stream"
            )
            r = await c.get(path, params={"topic": "new", "since": 0, "timeout": 5})
    return r.status_code, r.json().get("error")


@pytest.mark.parametrize(
    ("transport", "sse_impl"),
    each_sse_impl(["sse", "ws", "poll", "long-poll", "publish", "stream"]),
)
async def test_new_topic_at_the_cap_is_a_clean_refusal(transport, serve, settings, caplog):
    """Every topic held: a new one is 503 topic_limit before any stream starts, no traceback."""
    server = serve(settings.replace(max_topics=2))
    streams = await hold(server, ["h1", "h2"])
    try:
        # A short poll reads and never creates a topic: it is answered (empty) at the cap too.
        expected = (200, None) if transport == "poll" else (503, "topic_limit")
        assert await at_the_cap(transport, server) == expected
        assert tracebacks(caplog) == []
    finally:
        for s in streams:
            s.close()


async def test_subscribers_cannot_lock_publishers_out(serve, settings, caplog):
    """Streams holding empty topics stop at max_subscriber_topics; publishers still get room."""
    server = serve(settings.replace(max_topics=10, max_subscriber_topics=3))
    streams = await hold(server, ["e1", "e2", "e3"])
    try:
        assert await at_the_cap("sse", server) == (503, "topic_limit")
        async with httpx.AsyncClient(base_url=server.url, timeout=10 * MS) as c:
            r = await c.post("/publish", params={"topic": "news"}, json=1)
        assert r.status_code == 200
        assert tracebacks(caplog) == []
    finally:
        for s in streams:
            s.close()


async def test_ws_accepted_for_first_message_auth_closes_1013_at_the_cap(serve, settings):
    """A socket already accepted (first-message auth) that finds no room is closed 1013."""
    cfg = settings.replace(max_topics=1, auth=True)
    server = serve(cfg)
    token, _ = issue(cfg, "alice")
    streams = await hold(server, ["h1"], f"&token={token}")
    try:
        async with connect(f"ws://127.0.0.1:{server.port}/ws?topic=new") as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(await ws.recv())["type"] == "authenticated"
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5 * MS)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert "topic limit" in closed.value.rcvd.reason
    finally:
        for s in streams:
            s.close()


@pytest.mark.redis
@pytest.mark.parametrize(("transport", "sse_impl"), each_sse_impl(["sse", "ws", "long-poll"]))
async def test_redis_topic_cap_answers_the_same(transport, serve, settings, redis_prefix, caplog):
    """The Redis broker refuses a subscriber's new topic at the cap with the same 503."""
    require_redis()
    cfg = settings.replace(max_topics=2, broker=SHARED_URL, redis_prefix=redis_prefix)
    server = serve(cfg)
    streams = await hold(server, ["h1", "h2"])
    try:
        assert await at_the_cap(transport, server) == (503, "topic_limit")
        assert tracebacks(caplog) == []
    finally:
        for s in streams:
            s.close()


async def test_topics_subscribers_open_are_reclaimed(serve, settings):
    """Streams on ever new topics, in waves of max_topics: each wave's topics go with it."""
    wave, waves = 50, (40 if FULL else 2)
    server = serve(settings.replace(max_topics=wave))
    async with httpx.AsyncClient(base_url=server.url, timeout=10 * MS) as c:

        async def reclaimed() -> bool:
            return (await broker_stats(c))["topics"] == 0

        for w in range(waves):
            # Without reclamation the second wave would find the table full (503).
            streams = await hold(server, [f"w{w}-{i}" for i in range(wave)])
            assert (await broker_stats(c))["topics"] == wave
            for s in streams:
                s.close()
            await async_wait_until(reclaimed, what="topics reclaimed")
        assert (await broker_stats(c))["tombstones"] == 0  # nothing was published to them
        assert (await c.post("/publish", params={"topic": "fresh"}, json=1)).status_code == 200


async def test_resume_across_reclamation_keeps_seqs(serve, settings):
    """A topic reclaimed for room continues its seqs: a caught-up poller sees no gap."""
    server = serve(settings.replace(max_topics=1))
    async with httpx.AsyncClient(base_url=server.url, timeout=10 * MS) as c:
        for _ in range(3):
            await c.post("/publish", params={"topic": "a"}, json=1)
        r = await c.post("/publish", params={"topic": "b"}, json=1)
        assert r.status_code == 200  # a, idle, was reclaimed to make room
        body = (await c.get("/poll", params={"topic": "a", "since": 3})).json()
        assert (body["events"], body["gap"], body["last_seq"]) == ([], None, 3)
        seq = (await c.post("/publish", params={"topic": "a"}, json=1)).json()["seq"]
        assert seq == 4
