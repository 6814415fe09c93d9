"""GET /long-poll against a real server: wait, answer, cap, 204 and disconnects."""

import asyncio
import time

import httpx
import pytest

from servers.state import Shutdown
from tests.support import async_wait_until


@pytest.fixture
async def http(live):
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as c:
        yield c


async def test_answers_at_once_when_events_exist(http):
    """Events already past since come back without waiting."""
    await http.post("/publish", params={"topic": "t"}, json=1)
    t0 = time.perf_counter()
    r = await http.get("/long-poll", params={"topic": "t", "since": 0, "timeout": 10})
    assert r.status_code == 200 and [e["seq"] for e in r.json()["events"]] == [1]
    assert time.perf_counter() - t0 < 5


async def test_wakes_on_publish(http):
    """A waiting request is answered by the next publish."""
    waiting = asyncio.ensure_future(
        http.get("/long-poll", params={"topic": "t", "since": 0, "timeout": 20})
    )
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await http.post("/publish", params={"topic": "t"}, json="hi")
    r = await asyncio.wait_for(waiting, 10)
    assert r.json()["events"][0]["data"] == "hi"


async def test_timeout_is_204_with_cursor(http):
    """Nothing in time: 204 and the cursor header, no body."""
    await http.post("/publish", params={"topic": "t"}, json=1)
    r = await http.get("/long-poll", params={"topic": "t", "timeout": 0.1})
    assert (r.status_code, r.headers["pushlab-cursor"], r.content) == (204, "1", b"")


async def test_timeout_is_capped(serve, settings):
    """A timeout above the cap is lowered to it."""
    server = serve(settings.replace(long_poll_timeout_s=0.1, long_poll_max_timeout_s=0.3))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        t0 = time.perf_counter()
        r = await c.get("/long-poll", params={"topic": "t", "timeout": 3600})
    assert r.status_code == 204
    assert 0.25 < time.perf_counter() - t0 < 10


@pytest.mark.parametrize("timeout", ["0", "-1", "soon", "nan"])
async def test_bad_timeout_is_422(http, timeout):
    """Non-positive or non-numeric timeouts are refused."""
    r = await http.get("/long-poll", params={"topic": "t", "timeout": timeout})
    assert (r.status_code, r.json()["error"]) == (422, "invalid_parameter")


async def test_client_leaving_frees_the_wait(live):
    """A client that disconnects mid-wait is noticed at once: its waiter is released (uvicorn:
    by its cycle, servers/fastpath/disconnect.py; hypercorn: in test_http_versions.py)."""
    await leaving_frees_the_wait(live.url)


async def leaving_frees_the_wait(url: str) -> None:
    """A long poll parked on ``url`` whose client leaves is released within seconds, not at its
    25 s timeout."""
    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as http,
        httpx.AsyncClient(base_url=url, timeout=30) as other,
    ):

        async def waiters() -> int:
            return int((await http.get("/healthz")).json()["broker"]["waiters"])

        async def one_waiting() -> bool:
            return await waiters() == 1

        async def none_waiting() -> bool:
            return await waiters() == 0

        task = asyncio.ensure_future(
            other.get("/long-poll", params={"topic": "w", "since": 0, "timeout": 25})
        )
        await async_wait_until(one_waiting, 10, "the long-poll to wait")
        task.cancel()
        await other.aclose()
        await async_wait_until(none_waiting, 5, "the waiter to be released")


async def test_drain_answers_every_parked_wait_at_once():
    """Shutdown resolves the futures parked on it when set, and at once when parked after."""
    shutdown = Shutdown()
    loop = asyncio.get_running_loop()
    before = [loop.create_future() for _ in range(3)]
    for waiter in before:
        shutdown.park(waiter)
    shutdown.unpark(before[2])
    shutdown.set()
    assert [w.done() for w in before] == [True, True, False]
    late = loop.create_future()
    shutdown.park(late)
    assert late.done() and not shutdown.parked
