"""The shared send watchdog: stalled sends time out, other cancellations pass through."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from servers.timers.watchdog import CHECKS_PER_TIMEOUT, SendWatchdog
from tests.servers.rawws import RawWS
from tests.servers.test_heartbeat import MARGIN, flood, wait_freed

TIMEOUT = 0.2


async def test_a_stalled_send_raises_timeout_error_in_bounds():
    """A send blocked past the timeout becomes TimeoutError within one check period."""
    dog = SendWatchdog(TIMEOUT)
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        with dog:
            await never
    took = time.monotonic() - t0
    assert TIMEOUT <= took <= TIMEOUT * (1 + 1 / CHECKS_PER_TIMEOUT) + MARGIN
    dog.close()


async def test_a_foreign_cancel_stays_a_cancel_and_fast_sends_pass():
    """Cancelling the task from outside is not turned into a timeout; quick sends never time out."""
    dog = SendWatchdog(TIMEOUT)

    async def quick_sends() -> int:
        n = 0
        deadline = time.monotonic() + 2 * TIMEOUT
        while time.monotonic() < deadline:
            with dog:
                await asyncio.sleep(0.001)
            n += 1
        return n

    assert await quick_sends() > 10

    async def blocked() -> None:
        with dog:
            await asyncio.Event().wait()

    task = asyncio.ensure_future(blocked())
    await asyncio.sleep(TIMEOUT / 4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    dog.close()


async def test_ws_reader_that_stopped_is_dropped_by_send_timeout(serve, settings):
    """With the heartbeat off, a WebSocket whose peer stopped reading is freed by send_timeout_s
    (plus send_close_timeout_s for the goodbye) and closed 1013, as docs/protocol.md says."""
    server = serve(
        settings.replace(ws_ping_interval_s=0, send_timeout_s=0.5, send_close_timeout_s=0.1)
    )
    raw = await RawWS.connect(server.port, "/ws?topic=t", rcvbuf=4096)
    await flood(server.url)
    t0 = time.monotonic()
    detected = await wait_freed(server.url, "ws") - t0
    raw.abort()
    async with httpx.AsyncClient(trust_env=False) as http:
        text = (await http.get(f"{server.url}/metrics")).text
    assert 'pushlab_errors_total{kind="send_timeout",transport="ws"} 1.0' in text
    assert 'pushlab_closes_total{code="1013",transport="ws"} 1.0' in text
    assert detected <= 0.5 * (1 + 1 / CHECKS_PER_TIMEOUT) + 0.1 + MARGIN
