"""The browser's WebSocket panel answers the server's heartbeat, so a live tab is never cut."""

from __future__ import annotations

import httpx
import pytest

from tests.support import MS, wait_until

pytestmark = pytest.mark.browser

INTERVAL, TIMEOUT = 0.2, 0.3


def test_dashboard_ws_answers_pings(serve, settings, new_page):
    """Many heartbeat rounds pass with one connection and RTTs recorded by the server."""
    server = serve(
        settings.replace(ticker_rate=5, ws_ping_interval_s=INTERVAL, ws_ping_timeout_s=TIMEOUT)
    )
    page = new_page(server.url + "/")
    page.wait_for_function("() => window.pushlab && window.pushlab.clients.ws.counters.events >= 1")

    def rtt_count() -> float:
        text = httpx.get(f"{server.url}/metrics", trust_env=False).text
        line = next(x for x in text.splitlines() if x.startswith("pushlab_ping_rtt_seconds_count"))
        return float(line.split()[-1])

    wait_until(lambda: rtt_count() >= 8, 10 * MS, "eight answered heartbeats")
    ws = page.evaluate("() => window.pushlab.clients.ws.counters")
    assert ws["reconnects"] == 0 and ws["connections"] == 1, ws
