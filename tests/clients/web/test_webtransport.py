"""WebTransport from a page in Debian's Chromium: the feed over HTTP/3, pinned by hash."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from clients.browser import launch
from feed.settings import Settings
from tests.support import MS, wait_until

pytestmark = pytest.mark.browser

START = """async ([topic, options]) => {
  const { WebTransportClient } = await import('/web/webtransport.js');
  const c = new WebTransportClient('', topic, options);
  window.clients = window.clients || {};
  window.clients[topic] = c;
  c.start();
}"""


@pytest.fixture(scope="module")
def quic_browser(playwright: Any) -> Iterator[Any]:
    """Chromium with QUIC on (the lab's other browser tests turn it off)."""
    b = launch(playwright, quic=True)
    yield b
    b.close()


@pytest.fixture
def page(quic_browser: Any) -> Iterator[Any]:
    context = quic_browser.new_context()
    context.set_default_timeout(10_000 * MS)
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({}, ticker_rate=0, webtransport_port=0, admin=True)


def publish(url: str, topic: str, n: int) -> None:
    for i in range(n):
        r = httpx.post(f"{url}/publish", params={"topic": topic}, json={"i": i}, trust_env=False)
        assert r.status_code == 200


def open_sessions(url: str) -> float:
    """``pushlab_connections{transport="wt"}``: sessions the server is serving."""
    text = httpx.get(f"{url}/metrics", trust_env=False).text
    prefix = 'pushlab_connections{transport="wt"}'
    return next((float(x.split()[-1]) for x in text.splitlines() if x.startswith(prefix)), 0.0)


def counters(page: Any, topic: str) -> dict[str, Any]:
    got: dict[str, Any] = page.evaluate(f"() => window.clients['{topic}'].counters")
    return got


def test_page_receives_the_feed_over_webtransport(serve, settings, page):
    """Events published after the session opens reach the page, in order, exactly once."""
    live = serve(settings)
    page.goto(f"{live.url}/healthz")
    page.evaluate(START, ["s", {}])
    page.wait_for_function("() => window.clients.s.lastSeq === 0")
    publish(live.url, "s", 20)
    page.wait_for_function("() => window.clients.s.counters.events === 20")
    assert page.evaluate("() => window.clients.s.contiguous")
    c = counters(page, "s")
    assert (c["duplicates"], c["connections"], c["reconnects"]) == (0, 1, 0)


def test_page_resumes_after_a_drop_and_a_kick(serve, settings, page):
    """A session the page closes, then one the server ends: each time it resumes, losing none."""
    live = serve(settings)
    page.goto(f"{live.url}/healthz")
    page.evaluate(START, ["r", {"baseMs": 20, "capMs": 200}])
    page.wait_for_function("() => window.clients.r.lastSeq === 0")
    publish(live.url, "r", 10)
    page.wait_for_function("() => window.clients.r.counters.events === 10")
    page.evaluate("() => window.clients.r.drop()")
    publish(live.url, "r", 10)
    page.wait_for_function("() => window.clients.r.counters.events === 20")
    # The page's close reached the server: the old session ended there, not at the idle timeout.
    wait_until(lambda: open_sessions(live.url) == 1, 5 * MS, "one session left on the server")
    r = httpx.post(f"{live.url}/admin/kick", params={"topic": "r"}, trust_env=False)
    assert r.status_code == 200
    publish(live.url, "r", 10)
    page.wait_for_function("() => window.clients.r.counters.events === 30")
    assert page.evaluate("() => window.clients.r.contiguous")
    c = counters(page, "r")
    assert c["connections"] >= 3 and c["duplicates"] == 0, c


def test_page_receives_events_as_datagrams(serve, settings, page):
    """With datagrams on, events arrive as datagrams (loopback: none lost here, holes counted)."""
    live = serve(settings)
    page.goto(f"{live.url}/healthz")
    page.evaluate(START, ["d", {"datagrams": True}])
    page.wait_for_function("() => window.clients.d.lastSeq === 0")
    publish(live.url, "d", 20)
    page.wait_for_function("() => window.clients.d.lastSeq === 20")
    c = counters(page, "d")
    sent = httpx.get(f"{live.url}/webtransport", trust_env=False).json()["datagrams"]["sent"]
    assert sent == 20
    # Whatever was lost shows as holes, never as silence.
    assert c["events"] + c["lost"] == 20, c


def test_dashboard_has_a_webtransport_panel_when_served(serve, settings, page):
    """With --webtransport-port the dashboard adds a WebTransport panel that takes the feed."""
    live = serve(settings.replace(ticker_rate=20))
    page.goto(f"{live.url}/")
    page.wait_for_function("() => window.pushlab && window.pushlab.clients.wt")
    page.wait_for_function("() => window.pushlab.clients.wt.counters.events >= 5")
    panel = page.locator('section.panel[data-transport="wt"]')
    panel.locator(".check.ok").wait_for()
    assert panel.locator(".state").inner_text() == "open"
