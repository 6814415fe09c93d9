"""Prometheus /metrics: scraped from a real server after real traffic."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from feed.settings import SSE_IMPLS
from tests.support import MS, async_wait_until


async def scrape(url: str) -> dict[tuple[str, tuple], float]:
    async with httpx.AsyncClient(trust_env=False) as http:
        r = await http.get(f"{url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.mark.parametrize("sse_impl", SSE_IMPLS)
async def test_metrics_count_connections_events_bytes_errors_and_closes(live):
    """Gauges, counters and close codes follow a WebSocket and an SSE stream's lives."""
    ws_url = live.url.replace("http", "ws") + "/ws?topic=t"
    async with (
        httpx.AsyncClient(trust_env=False, timeout=5) as http,
        connect(ws_url) as ws,
        http.stream("GET", f"{live.url}/sse", params={"topic": "t"}) as sse,
    ):
        await ws.recv()
        lines = sse.aiter_lines()
        while "ready" not in await anext(lines):
            pass
        m = await scrape(live.url)
        assert m[("pushlab_connections", (("transport", "ws"),))] == 1
        assert m[("pushlab_connections", (("transport", "sse"),))] == 1
        for i in range(10):
            await http.post(f"{live.url}/publish", params={"topic": "t"}, json={"i": i})
        for _ in range(10):
            await asyncio.wait_for(ws.recv(), 5 * MS)
        await ws.send("garbage")
        await ws.recv()
        await http.get(f"{live.url}/poll", params={"topic": "t", "since": "0"})
        await http.get(f"{live.url}/poll", params={"topic": "bad topic"})

        async def sse_counted() -> bool:
            return (await scrape(live.url)).get(
                ("pushlab_events_sent_total", (("transport", "sse"),)), 0
            ) == 10

        await async_wait_until(sse_counted, 5, "sse events counted")
    await async_wait_until(lambda: _gauge_zero(live.url), 5, "connections closed")
    m = await scrape(live.url)
    assert m[("pushlab_events_sent_total", (("transport", "ws"),))] == 10
    assert m[("pushlab_events_sent_total", (("transport", "poll"),))] == 10
    ws_bytes = m[("pushlab_bytes_sent_total", (("transport", "ws"),))]
    assert 10 * len(b'{"topic":"t","seq":1,"ts_ns":1,"data":{"i":0}}') < ws_bytes < 10 * 200
    assert m[("pushlab_errors_total", (("kind", "invalid_json"), ("transport", "ws")))] == 1
    assert m[("pushlab_closes_total", (("code", "1000"), ("transport", "ws")))] == 1
    assert m[("pushlab_closes_total", (("code", "client_gone"), ("transport", "sse")))] == 1


async def _gauge_zero(url: str) -> bool:
    m = await scrape(url)
    return all(v == 0 for (name, _), v in m.items() if name == "pushlab_connections")


async def test_registry_is_per_app(serve, settings):
    """Two apps in one process keep separate counts (no process-global registry)."""
    a, b = serve(settings), serve(settings)
    async with connect(a.url.replace("http", "ws") + "/ws?topic=t") as ws:
        await ws.recv()
        assert (await scrape(a.url))[("pushlab_connections", (("transport", "ws"),))] == 1
        assert ("pushlab_connections", (("transport", "ws"),)) not in await scrape(b.url)


async def test_rejections_are_counted(serve, settings):
    """Refused upgrades are counted by status."""
    server = serve(settings.replace(origins="https://ok.example"))
    ws_url = server.url.replace("http", "ws") + "/ws?topic=t"
    try:
        async with connect(ws_url, origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    except Exception:
        pass
    m = await scrape(server.url)
    assert m[("pushlab_rejected_total", (("status", "403"), ("transport", "ws")))] == 1
