"""Errata only a real browser can prove: Debian's Chromium driven by Playwright."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.server import ServerConnection, serve

from clients.explain.handshake import open_ws
from servers.launch import ServerThread
from tests.docs.nodejs import node_script
from tests.support import require, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = require("chromium", "browser errata")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, live: ServerThread) -> Iterator[Any]:
    """A page on the live server's origin (so EventSource needs no CORS)."""
    pg = browser.new_page()
    pg.goto(f"{live.url}/healthz")
    yield pg
    pg.close()


def test_unechoed_subprotocol_fails_the_handshake(page, live):
    """A subprotocol offered and not echoed makes Chromium fail the handshake (1006, never open)."""
    ws_url = live.url.replace("http", "ws") + "/ws?topic=proto"
    script = """([url, protocols]) => new Promise(resolve => {
        const ws = protocols ? new WebSocket(url, protocols) : new WebSocket(url);
        ws.onopen = () => { resolve({opened: true}); ws.close(); };
        ws.onclose = e => resolve({opened: false, code: e.code});
    })"""
    assert page.evaluate(script, [ws_url, None]) == {"opened": True}
    assert page.evaluate(script, [ws_url, ["token.abc123"]]) == {"opened": False, "code": 1006}


def test_e7_sse_is_limited_to_six_per_origin_but_websockets_are_not(page, live):
    """E7: over HTTP/1.1 the 7th EventSource waits for a free slot; 8 WebSockets all open (Q10)."""
    page.evaluate(
        """url => { window.es = [...Array(7)].map(() => new EventSource(url)); }""",
        f"{live.url}/sse?topic=limit",
    )
    states = "() => window.es.map(e => e.readyState)"
    wait_until(lambda: page.evaluate(states).count(1) == 6, 10, "six open EventSources")
    page.wait_for_timeout(500)  # a bounded look: the seventh must still be waiting after this
    assert sorted(page.evaluate(states)) == [0, 1, 1, 1, 1, 1, 1]
    page.evaluate("() => window.es.find(e => e.readyState === 1).close()")
    wait_until(lambda: page.evaluate(states).count(1) == 6, 10, "the seventh takes the slot")
    page.evaluate("() => window.es.forEach(e => e.close())")
    opened = page.evaluate(
        """url => Promise.all([...Array(8)].map(() => new Promise(resolve => {
            const ws = new WebSocket(url);
            ws.onopen = () => resolve(true);
            ws.onclose = () => resolve(false);
        })))""",
        live.url.replace("http", "ws") + "/ws?topic=limit",
    )
    assert opened == [True] * 8


def test_e9_browsers_cannot_ping_but_answer_pings(browser):
    """E9: the browser API has no ping(); Chromium still answers a server's pings by itself."""
    conns: list[ServerConnection] = []

    def handler(ws: ServerConnection) -> None:
        conns.append(ws)
        for _ in ws:
            pass

    sock = socket.create_server(("127.0.0.1", 0))  # bound first: no race for the port
    port = sock.getsockname()[1]
    with serve(handler, sock=sock, ping_interval=0.1, ping_timeout=5) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        page = browser.new_page()
        try:
            assert page.evaluate("() => typeof WebSocket.prototype.ping") == "undefined"
            page.evaluate(f"() => {{ window.ws = new WebSocket('ws://127.0.0.1:{port}/'); }}")
            wait_until(lambda: bool(conns) and conns[0].latency > 0, 10, "a pong from Chromium")
        finally:
            page.close()
            server.shutdown()
        thread.join(5)


# The seed's Q11 server and Q16 handler, verbatim but for verifyToken and the logging line.
SEED_Q16 = """
const express = require('express');
const http = require('http');
const WebSocket = require('ws');
const app = express();
const server = http.createServer(app);
const wss = new WebSocket.Server({ server });
const verifyToken = (token) => token === 'good';
wss.on('connection', (ws, req) => {
  const token = req.headers['sec-websocket-protocol'];
  console.log(JSON.stringify({ token }));
  const isValid = verifyToken(token);
  if (!isValid) {
    ws.close();
  }
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
"""


def test_e8_seed_token_subprotocol_opens_reflects_and_checks_late(browser):
    """E8: on Node ws the seed token handshake opens in Chromium, echoes the token, checks late."""
    script = """([url, protocols]) => new Promise(resolve => {
        const ws = new WebSocket(url, protocols);
        let opened = false, protocol = null;
        ws.onopen = () => { opened = true; protocol = ws.protocol; };
        ws.onclose = e => resolve({opened, protocol, code: e.code});
    })"""
    with node_script(SEED_Q16) as node:
        page = browser.new_page()
        try:
            url = node.url.replace("http", "ws")
            bad = page.evaluate(script, [url, ["bad"]])
            both = page.evaluate(script, [url, ["good", "chat"]])
        finally:
            page.close()
        wait_until(lambda: len(node.lines) >= 2, 10, "the server's two log lines")
    # ws echoes the first offered protocol: the handshake succeeds and the token comes back in
    # the response header; the check runs after the upgrade (close without a code: 1005).
    assert bad == {"opened": True, "protocol": "bad", "code": 1005}
    # The server reads the whole comma-separated list, so a good token beside a real
    # subprotocol fails the check: the connection opens, then is closed.
    assert both == {"opened": True, "protocol": "good", "code": 1005}
    assert [line.strip() for line in node.lines[:2]] == [
        '{"token":"bad"}',
        '{"token":"good, chat"}',
    ]


def test_e5_browser_close_takes_1000_or_3000_to_4999_and_123_bytes(page, live):
    """E5 (Q9): close() from a page throws for 1001 or a 124-byte reason; 4000 + 123 bytes pass."""
    script = """async ([url, code, reason]) => {
        const ws = new WebSocket(url);
        await new Promise(resolve => { ws.onopen = resolve; });
        try { ws.close(code, reason); } catch (e) { ws.close(); return e.name; }
        return await new Promise(resolve => { ws.onclose = e => resolve([e.code, e.reason]); });
    }"""
    url = live.url.replace("http", "ws") + "/ws?topic=close"
    assert page.evaluate(script, [url, 1001, "bye"]) == "InvalidAccessError"
    assert page.evaluate(script, [url, 1000, "é" * 62]) == "SyntaxError"  # 124 bytes of UTF-8
    assert page.evaluate(script, [url, 4000, "x" * 123]) == [4000, "x" * 123]


def test_e23_a_refused_handshake_is_1006_whatever_the_status(browser, serve, settings):
    """E23 (Q16, Q19): a 401 and a 400 before the upgrade both reach the page as close 1006."""
    authed = serve(settings.replace(auth=True))  # a bad token: 401
    plain = serve(settings)  # a bad topic: 400 (with auth on, the token is checked first)
    targets = [(authed, "/ws?topic=t&token=not-a-jwt"), (plain, "/ws?topic=%20")]
    page = browser.new_page()
    try:
        page.goto(f"{authed.url}/healthz")
        script = """url => new Promise(resolve => {
            const ws = new WebSocket(url);
            ws.onopen = () => resolve('open');
            ws.onclose = e => resolve([e.code, e.reason, e.wasClean]);
        })"""
        seen = [page.evaluate(script, s.url.replace("http", "ws") + t) for s, t in targets]
    finally:
        page.close()
    assert seen == [[1006, "", False]] * 2
    statuses = []
    for server, target in targets:
        wire, report = open_ws(server.url, target)
        wire.close()
        statuses.append(report["status"])
    assert statuses == [401, 400]  # what a non-browser client sees, and the page cannot


@pytest.mark.slow
def test_e11_chromium_caps_websockets_to_one_host_at_255(browser):
    """E11 (Q29): the WebSocket cap is in the hundreds: Chromium opens 255 to one host, not 6."""

    def handler(ws: ServerConnection) -> None:
        for _ in ws:
            pass

    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    with serve(handler, sock=sock) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        page = browser.new_page()
        try:
            page.evaluate(
                """url => { window.opened = 0; window.sockets = [...Array(270)].map(() => {
                    const ws = new WebSocket(url); ws.onopen = () => window.opened++; return ws;
                }); }""",
                f"ws://127.0.0.1:{port}/",
            )
            opened = "() => window.opened"
            wait_until(lambda: page.evaluate(opened) >= 255, 60, "255 open WebSockets")
            page.wait_for_timeout(1000)  # a bounded look: no 256th opens later
            assert page.evaluate(opened) == 255
            # Past the cap Chromium does not queue: the socket fails (CLOSED, never opened).
            states = "() => window.sockets.map(ws => ws.readyState)"
            assert sorted(page.evaluate(states)) == [1] * 255 + [3] * (270 - 255)
        finally:
            page.close()
            server.shutdown()
        thread.join(5)
