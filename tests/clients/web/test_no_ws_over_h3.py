"""RFC 9220 (WebSocket over HTTP/3) in Chromium: not supported; this shows it does not try.

Chromium is made to speak HTTP/3 to one origin (``--origin-to-force-quic-on``) where the lab's
HTTP/3 server listens on UDP and a plain TCP listener holds the same port number. A fetch to the
origin arrives over HTTP/3 (the server answers it 405: it only serves CONNECT), which proves
Chromium has a QUIC connection there; then ``new WebSocket("wss://...")`` to the same origin
never arrives as an extended CONNECT with ``:protocol: websocket`` (the server would answer
501) but as a TLS ClientHello on TCP: Chromium falls back to WebSocket over HTTP/1.1.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from clients.browser import launch
from feed.settings import Settings
from tests.support import MS, wait_until

pytestmark = pytest.mark.browser


def rejected(url: str, status: int) -> float:
    """``pushlab_rejected_total{transport="wt",status=...}`` from /metrics."""
    text = httpx.get(f"{url}/metrics", trust_env=False).text
    key = f'pushlab_rejected_total{{status="{status}",transport="wt"}}'
    alt = f'pushlab_rejected_total{{transport="wt",status="{status}"}}'
    for line in text.splitlines():
        if line.startswith((key, alt)):
            return float(line.split()[-1])
    return 0.0


class FirstBytes:
    """A TCP listener that records the first bytes of each connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.seen: list[bytes] = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    self.seen.append(conn.recv(5))
                except OSError:
                    self.seen.append(b"")

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


def test_chromium_sends_websocket_over_tcp_not_http3(serve, playwright: Any):
    """With an HTTP/3 connection to the origin, a wss:// WebSocket still goes over TCP."""
    tcp = FirstBytes()
    try:
        live = serve(Settings.from_env({}, ticker_rate=0, webtransport_port=tcp.port))
        cert = live.app.state.webtransport.cert
        spki = cert.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
        origin = f"127.0.0.1:{tcp.port}"
        browser = launch(
            playwright,
            quic=True,
            args=(
                f"--origin-to-force-quic-on={origin}",
                f"--ignore-certificate-errors-spki-list={pin}",
            ),
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(10_000 * MS)
            page.goto(f"{live.url}/healthz")
            page.evaluate(
                f"() => fetch('https://{origin}/probe', {{mode: 'no-cors'}}).catch(() => 0)"
            )
            wait_until(lambda: rejected(live.url, 405) >= 1, 10 * MS, "the fetch over HTTP/3")
            page.evaluate(f"() => {{ window.ws = new WebSocket('wss://{origin}/ws?topic=t'); }}")
            wait_until(lambda: len(tcp.seen) >= 1, 10 * MS, "the WebSocket's TCP connection")
        finally:
            browser.close()
        assert tcp.seen[0][:1] == b"\x16"  # a TLS handshake record: HTTP/1.1 over TLS follows
        assert rejected(live.url, 501) == 0  # no CONNECT :protocol=websocket over HTTP/3
    finally:
        tcp.close()
