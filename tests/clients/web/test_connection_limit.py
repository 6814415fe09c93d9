"""HTTP/1.1's six connections per origin, seen from a real browser, and HTTP/2 replacing it.

Every EventSource holds one HTTP connection for as long as it lives. Over HTTP/1.1 Chromium opens
at most six connections per origin, so a seventh stream to the same origin waits for one of them
to close: a dashboard open in a few tabs runs out of connections. Over HTTP/2 all streams share
one connection, up to the server's SETTINGS_MAX_CONCURRENT_STREAMS. The through-nginx tests change
one variable: the same nginx (experiments/front.py: TLS, HTTP/1.1 to the app), http2 on or off.

How a stall is told from slowness: the page (clients/web/streams.html) creates all its
EventSources in one script task, so every request is issued at the same instant. The test waits
until the expected number are open, publishes one event and waits until each open stream has
received it: a full round trip server -> nginx -> browser on every open stream. A waiting
stream had the same time to connect and did not: it is still CONNECTING, has received nothing,
and the server counts no subscription for it. Then a further STALL_WINDOW_S passes (far longer
than the few milliseconds an open took) and a second event is published: the open streams get
it, the waiting ones still have nothing. No limit would mean all ten open and the assertion of
exactly N fails, so the test cannot pass by luck; only a slower-than-window connect (not a
stall) could make it fail, and the window is scaled by PUSHLAB_TEST_MS for slow machines.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from experiments.front import NEXT_HOP, Front, access_lines
from servers.launch import ServerThread
from tests.support import MS, wait_until

pytestmark = pytest.mark.browser

OPEN_SOURCES = """([url, n]) => {
  window.streams = [];
  for (let i = 0; i < n; i++) {
    const es = new EventSource(url);
    const s = { es, open: false, messages: 0 };
    es.onopen = () => { s.open = true; };
    es.onmessage = () => { s.messages += 1; };
    window.streams.push(s);
  }
}"""
OPEN_COUNT = "() => window.streams.filter(s => s.open).length"


def subscribers(server: ServerThread) -> int:
    """Live subscriptions as the server counts them (asked from Python, not the browser)."""
    r = httpx.get(f"{server.url}/healthz", trust_env=False)
    return int(r.json()["broker"]["subscribers"])


def test_seventh_event_source_stalls_over_http1(live, new_page):
    """Six EventSources open; the seventh waits until one of the six closes."""
    page = new_page(f"{live.url}/healthz")
    assert page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol") == (
        "http/1.1"
    )
    page.evaluate(OPEN_SOURCES, [f"{live.url}/sse?topic=limit", 7])
    page.wait_for_function(f"() => ({OPEN_COUNT})() === 6")
    wait_until(lambda: subscribers(live) == 6, 5, "six subscriptions")
    # A round trip through the six open streams: the seventh had every chance to connect too.
    httpx.post(f"{live.url}/publish", params={"topic": "limit"}, json={}, trust_env=False)
    page.wait_for_function("() => window.streams.filter(s => s.messages > 0).length === 6")
    stalled = page.evaluate("() => window.streams.filter(s => !s.open).map(s => s.es.readyState)")
    assert stalled == [0]  # CONNECTING: queued in the browser, the server never saw it
    assert subscribers(live) == 6
    page.evaluate("() => window.streams.find(s => s.open).es.close()")
    page.wait_for_function("() => window.streams.filter(s => s.open).length === 7")
    wait_until(lambda: subscribers(live) == 6, 5, "the seventh takes the freed connection")


STALL_WINDOW_S = 1.0
# What the page's open streams and their stalled neighbours look like, from window.streamsReport().
OPENED = "() => window.streamsReport().streams.filter(s => s.openMs !== null).length"
GOT = "n => window.streamsReport().streams.filter(s => s.events >= n).length"


def publish(server: ServerThread, topic: str) -> None:
    r = httpx.post(f"{server.url}/publish", params={"topic": topic}, json={}, trust_env=False)
    assert r.status_code == 200


@pytest.mark.nginx
@pytest.mark.parametrize(
    ("http2", "max_streams", "expected"),
    [
        pytest.param(False, None, 6, id="h1-six-per-host"),
        pytest.param(True, None, 10, id="h2-all-ten"),
        pytest.param(True, 8, 8, id="h2-max-concurrent-streams-8"),
    ],
)
def test_ten_event_sources_through_nginx(live, front, pinned, http2, max_streams, expected):
    """Ten EventSources through one nginx: 6 open over HTTP/1.1, 10 over HTTP/2, N at N streams."""
    proxy = front(http2=http2, max_streams=max_streams)
    context = pinned.new_context()  # its own connection pool
    try:
        page = context.new_page()
        page.set_default_timeout(10_000 * MS)
        page.goto(f"{proxy.url}/web/streams.html?n=10&topic=wall")
        page.wait_for_function(f"() => ({OPENED})() === {expected}")
        wait_until(lambda: subscribers(live) == expected, 5, f"{expected} subscriptions")
        for n in (1, 2):
            if n == 2:
                page.wait_for_timeout(STALL_WINDOW_S * 1000 * MS)  # the stated window
            publish(live, "wall")
            page.wait_for_function(f"() => ({GOT})({n}) === {expected}")
        report = page.evaluate("window.streamsReport()")
        assert report["protocol"] == NEXT_HOP[http2]
        streams = report["streams"]
        opened = [s for s in streams if s["openMs"] is not None]
        waiting = [s for s in streams if s["openMs"] is None]
        assert len(opened) == expected and all(s["events"] == 2 for s in opened)
        assert all(s["firstLatencyMs"] is not None for s in opened)
        # CONNECTING, nothing received: queued in the browser, not slow on the server.
        assert [(s["readyState"], s["events"]) for s in waiting] == [(0, 0)] * (10 - expected)
        assert subscribers(live) == expected
        page.evaluate("window.closeStreams()")
    finally:
        context.close()
    # nginx logs a request when it ends: every stream, closed above, is in the log by now.
    wait_until(
        lambda: len(sse_lines(proxy)) >= expected, 5, "the closed streams in nginx's access log"
    )
    lines = sse_lines(proxy)
    assert {line.protocol for line in lines} == {"HTTP/2.0" if http2 else "HTTP/1.1"}
    # Only the streams the page saw open: closing them frees slots, and a waiting stream's
    # request may reach nginx in the instant before the page closes it too.
    was_open = {f"stream={s['i']}" for s in opened}
    served = [
        line for line in lines if line.status == 200 and line.uri.rsplit("&", 1)[-1] in was_open
    ]
    assert len(served) == expected
    connections = {line.connection for line in served}
    # HTTP/1.1: a connection per open stream; HTTP/2: all of them on one.
    assert len(connections) == (1 if http2 else expected)


def sse_lines(proxy: Front) -> list[Any]:
    return [line for line in access_lines(proxy.access_log_path) if line.uri.startswith("/sse")]


@pytest.mark.nginx
def test_websocket_through_nginx_h2_falls_back_to_its_own_http1_connection(live, front, pinned):
    """nginx's HTTP/2 has no RFC 8441, so Chromium opens its WebSocket over a new HTTP/1.1 link."""
    proxy = front(http2=True)
    context = pinned.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(10_000 * MS)
        page.goto(f"{proxy.url}/web/streams.html?n=1&topic=fallback")
        page.wait_for_function(f"() => ({OPENED})() === 1")
        assert page.evaluate("window.streamsReport().protocol") == "h2"
        ready = page.evaluate(
            """url => new Promise((resolve, reject) => {
                const ws = new WebSocket(url);
                ws.onmessage = (e) => { ws.close(); resolve(JSON.parse(e.data).type); };
                ws.onclose = (e) => reject(new Error(`closed ${e.code}`));
            })""",
            proxy.url.replace("https", "wss") + "/ws?topic=fallback",
        )
        assert ready == "ready"
        page.evaluate("window.closeStreams()")
    finally:
        context.close()
    wait_until(
        lambda: (
            {ln.uri.split("?")[0] for ln in access_lines(proxy.access_log_path)} >= {"/sse", "/ws"}
        ),
        5,
        "the stream and the WebSocket in nginx's access log",
    )
    lines = access_lines(proxy.access_log_path)
    (ws,) = [ln for ln in lines if ln.uri.startswith("/ws")]
    page_lines = [ln for ln in lines if not ln.uri.startswith("/ws")]
    assert (ws.protocol, ws.status, ws.request) == ("HTTP/1.1", 101, 1)
    assert {ln.protocol for ln in page_lines} == {"HTTP/2.0"}
    assert ws.connection not in {ln.connection for ln in page_lines}


@pytest.mark.parametrize(("query", "n"), [("n=abc", 10), ("n=2.5", 10), ("n=0", 1), ("n=999", 64)])
def test_streams_page_clamps_its_stream_count(live, new_page, query, n):
    """A bad or out-of-range ?n= opens a defined number of streams (default 10, 1..64)."""
    page = new_page(f"{live.url}/web/streams.html?{query}&topic=clamp")
    assert page.evaluate("window.streamsReport().n") == n
    page.evaluate("window.closeStreams()")
