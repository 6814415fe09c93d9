"""The dashboard's protocol switch: the same page from an h1 and an h2 origin of one nginx pair,
and from hypercorn's HTTP/3 origin."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from servers.launch import ServerThread
from tests.support import MS

pytestmark = [pytest.mark.browser, pytest.mark.nginx]

READY = "() => window.pushlab && window.pushlab.clients.ws.state === 'open'"
EACH_GOT = "n => Object.values(window.pushlab.clients).every(c => c.counters.events >= n)"
HOP = "() => performance.getEntriesByType('navigation')[0].nextHopProtocol"


def every_transport_receives(page: Any, live: ServerThread, n: int, verify: Any = True) -> None:
    """Publish to the dashboard's topic until each of its four clients has ``n`` events.

    A long poll only reports itself open once an answer came back, so publishing is also what
    proves each transport works through this origin; bounded by the page's default timeout."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.wait_for_function(READY)
    topic = page.evaluate("window.pushlab.topic")
    for _ in range(50):
        r = httpx.post(
            f"{live.url}/publish", params={"topic": topic}, json={}, trust_env=False, verify=verify
        )
        assert r.status_code == 200
        try:
            page.wait_for_function(EACH_GOT, arg=n, timeout=200 * MS)
            return
        except PlaywrightTimeout:  # not yet: publish again
            continue
    page.wait_for_function(EACH_GOT, arg=n)


def _page(opener: Any, errors: list[str]) -> Any:
    """A new page of ``opener`` (a browser or a context) whose script errors land in ``errors``."""
    page = opener.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(10_000 * MS)
    return page


def test_switch_moves_every_transport_to_the_h2_origin(live, front, pinned):
    """From the h1 origin, choosing h2 reloads the dashboard over HTTP/2; h3 is offered disabled."""
    h1, h2 = front(http2=False), front(http2=True)
    context = pinned.new_context()
    errors: list[str] = []
    try:
        page = _page(context, errors)
        page.goto(f"{h1.url}/?{urlencode({'h1': h1.url, 'h2': h2.url})}")
        every_transport_receives(page, live, 1)
        assert page.evaluate(HOP) == "http/1.1"
        assert page.input_value("#protocol") == "h1"
        options = page.eval_on_selector_all(
            "#protocol option", "os => os.map(o => [o.value, o.disabled, o.textContent])"
        )
        assert options[:2] == [["h1", False, "h1"], ["h2", False, "h2"]]
        assert options[2][:2] == ["h3", True] and "--http3" in options[2][2]
        with page.expect_navigation():
            page.select_option("#protocol", "h2")
        every_transport_receives(page, live, 1)
        assert page.url.startswith(h2.url)
        assert page.evaluate(HOP) == "h2"
        assert page.input_value("#protocol") == "h2"
        # The query came along: the switch can go back.
        assert page.evaluate("window.protocolSwitch.origins") == {"h1": h1.url, "h2": h2.url}
    finally:
        context.close()
    assert errors == []


def test_origins_that_are_not_http_urls_are_ignored(front, pinned):
    """A javascript: or garbage origin in the query never becomes a switch target."""
    h2 = front(http2=True)
    context = pinned.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(10_000 * MS)
        page.goto(f"{h2.url}/?{urlencode({'h1': 'javascript:alert(1)', 'h3': 'not a url'})}")
        page.wait_for_function("() => window.protocolSwitch")
        assert page.evaluate("window.protocolSwitch") == {"current": "h2", "origins": {}}
        disabled = page.eval_on_selector_all(
            "#protocol option", "os => os.map(o => [o.value, o.disabled])"
        )
        assert disabled == [["h1", True], ["h2", False], ["h3", True]]
    finally:
        context.close()


class _Versions:
    """Records each request's path and HTTP version (ASGI ``http_version``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            SEEN.add((scope["path"], scope["http_version"]))
        await self.app(scope, receive, send)


SEEN: set[tuple[str, str]] = set()


def test_dashboard_over_h3_runs_every_http_transport_on_quic(serve, settings, tls, playwright):
    """Chromium told to speak QUIC to hypercorn's origin (``--http3``): the page and every HTTP
    transport's requests arrive over HTTP/3 and deliver; the WebSocket goes over TCP (RFC 9220
    is in no browser); the switch shows h3 as this page's protocol."""
    from clients.browser import launch

    SEEN.clear()
    h3 = settings.replace(
        tls_cert=str(tls.cert), tls_key=str(tls.key), http2=True, http3=True, ticker_rate=0
    )
    server = serve(h3, customize=lambda app: app.add_middleware(_Versions))
    browser = launch(
        playwright,
        quic=True,
        args=(
            f"--origin-to-force-quic-on=127.0.0.1:{server.port}",
            f"--ignore-certificate-errors-spki-list={tls.spki_pin()}",
        ),
    )
    errors: list[str] = []
    try:
        page = _page(browser, errors)
        page.goto(f"{server.url}/?{urlencode({'h3': server.url})}")
        every_transport_receives(page, server, 2, verify=tls.client_context())
        assert page.evaluate(HOP) == "h3"
        assert page.input_value("#protocol") == "h3"
    finally:
        browser.close()
    assert errors == []
    versions = {path: v for path, v in SEEN if path in ("/poll", "/long-poll", "/sse", "/stream")}
    assert versions == {p: "3" for p in ("/poll", "/long-poll", "/sse", "/stream")}, SEEN
    assert {v for path, v in SEEN if path == "/ws"} <= {"1.1", "2"}, SEEN
