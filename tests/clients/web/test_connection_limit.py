"""HTTP/1.1's six connections per origin, seen from a real browser, and HTTP/2 lifting it.

Every EventSource holds one HTTP connection for as long as it lives. Over HTTP/1.1 Chromium opens
at most six connections per origin, so a seventh stream to the same origin waits for one of them
to close: a dashboard open in a few tabs runs out of connections. Over HTTP/2 all streams share
one connection (nginx terminates TLS + h2 here and proxies to uvicorn over HTTP/1.1).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clients.browser import launch
from servers.launch import ServerThread
from tests.support import MS, free_port, require, wait_until

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


def _self_signed(folder: Path) -> tuple[Path, Path, str]:
    """A certificate for 127.0.0.1; returns cert, key and the SPKI hash Chromium may trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return cert_path, key_path, base64.b64encode(hashlib.sha256(spki).digest()).decode()


NGINX_CONF = """daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
worker_processes 1;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  upstream app {{ server 127.0.0.1:{app_port}; keepalive 16; }}
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 1h;
    }}
  }}
}}
"""


@pytest.fixture
def h2_proxy(live: ServerThread, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """nginx on a free port: TLS + HTTP/2 in front of ``live``; yields (origin, SPKI hash)."""
    nginx = require("nginx", "the HTTP/2 test proxies through Debian's nginx")
    cert, key, spki = _self_signed(tmp_path)
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(prefix=tmp_path, app_port=live.port, port=port, cert=cert, key=key)
    )
    proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(conf)])
    try:
        wait_until(lambda: _listening(port) or proc.poll() is not None, 10, "nginx")
        assert proc.poll() is None, (tmp_path / "error.log").read_text()
        yield f"https://127.0.0.1:{port}", spki
    finally:
        proc.terminate()
        proc.wait(10)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_http2_carries_all_streams_on_one_connection(live, h2_proxy, playwright):
    """Through nginx over HTTP/2, ten EventSources to one origin are all open at once."""
    origin, spki = h2_proxy
    # Trust exactly this certificate's key, nothing else (certificate checks stay on).
    browser = launch(playwright, args=(f"--ignore-certificate-errors-spki-list={spki}",))
    try:
        page = browser.new_page()
        page.set_default_timeout(10_000 * MS)
        page.goto(f"{origin}/healthz")
        protocol = page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol")
        assert protocol == "h2"
        page.evaluate(OPEN_SOURCES, [f"{origin}/sse?topic=limit", 10])
        page.wait_for_function(f"() => ({OPEN_COUNT})() === 10")
        wait_until(lambda: subscribers(live) == 10, 5, "ten subscriptions")
        httpx.post(f"{live.url}/publish", params={"topic": "limit"}, json={}, trust_env=False)
        page.wait_for_function("() => window.streams.every(s => s.messages > 0)")
    finally:
        browser.close()
