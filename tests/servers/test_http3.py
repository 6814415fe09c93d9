"""HTTP/3 under hypercorn (``settings.http3``): served beside HTTP/2 on the same port number, and
a request whose client left is closed (servers/fastpath/hypercorn_h3.py)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from typing import Any

import httpx
import pytest

from clients.h3http import H3Transport
from feed.settings import Settings
from tests.support import async_wait_until

# What each request holds on the server while it is open (GET /healthz).
HELD = {
    "sse": ("/sse", lambda h: h["connections"].get("sse", 0)),
    "stream": ("/stream", lambda h: h["connections"].get("stream", 0)),
    "long-poll": ("/long-poll", lambda h: h["broker"]["waiters"]),
}


def h3_settings(settings: Settings, tls_files) -> Settings:
    return settings.replace(
        tls_cert=str(tls_files.cert), tls_key=str(tls_files.key), http2=True, http3=True
    )


def h3_client(tls_files, timeout: float = 10.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=H3Transport(tls_files.client_context()), timeout=timeout)


async def test_h3_answers_beside_h2_and_is_announced(serve, settings, tls_files):
    """The TCP answers name the UDP port in Alt-Svc; the same routes answer over HTTP/3."""
    server = serve(h3_settings(settings, tls_files))
    async with httpx.AsyncClient(verify=tls_files.client_context(), http2=True) as tcp:
        r = await tcp.get(server.url + "/healthz")
    assert r.http_version == "HTTP/2"
    assert f'h3=":{server.port}"' in r.headers["alt-svc"]
    async with h3_client(tls_files) as h3:
        r = await h3.get(server.url + "/poll", params={"topic": "t"})
        assert (r.status_code, r.http_version) == (200, "HTTP/3")
        assert r.json()["cursor"] == 0
        published = await h3.post(server.url + "/publish", params={"topic": "t"}, json={"i": 1})
        assert published.status_code == 200, published.text


async def test_no_connection_specific_header_reaches_an_h3_client(serve, settings, tls_files):
    """sse-starlette's ``Connection: keep-alive`` is dropped on HTTP/3 (RFC 9114 4.2): with it,
    aioquic's client closed the whole connection (H3_MESSAGE_ERROR) at the response head."""
    server = serve(h3_settings(settings, tls_files))
    async with (
        h3_client(tls_files) as h3,
        h3.stream("GET", server.url + "/sse", params={"topic": "t"}) as r,
    ):
        assert r.status_code == 200 and "connection" not in r.headers
        first = await anext(r.aiter_bytes())
    assert b"event: ready" in first


async def _held(http: httpx.AsyncClient, url: str, transport: str) -> int:
    return int(HELD[transport][1]((await http.get(url + "/healthz")).json()))


@pytest.mark.parametrize("how", ["request", "connection"])
@pytest.mark.parametrize("transport", sorted(HELD))
async def test_a_client_leaving_closes_its_h3_request(
    serve, settings, tls_files, caplog, transport, how
):
    """Giving up one request (STOP_SENDING + RESET_STREAM) or closing the QUIC connection
    (CONNECTION_CLOSE) releases what the request held at once, with no traceback; hypercorn 0.18
    alone kept it until the process ended (SSE, stream) or the wait's timeout (long poll)."""
    server = serve(h3_settings(settings, tls_files))
    path = HELD[transport][0]
    params: dict[str, Any] = {"topic": "t", "since": 0} | (
        {"timeout": 25} if transport == "long-poll" else {}
    )
    async with httpx.AsyncClient(verify=tls_files.client_context()) as probe:

        async def count() -> int:
            return await _held(probe, server.url, transport)

        async def held() -> bool:
            return await count() == 1

        async def released() -> bool:
            return await count() == 0

        h3 = h3_client(tls_files, timeout=30.0)
        try:
            request = h3.build_request("GET", server.url + path, params=params)
            # A long poll's head comes with its answer: the request is pending while held.
            sent = asyncio.ensure_future(h3.send(request, stream=True))
            await async_wait_until(held, 10, f"the {transport} request to be held")
            if how == "connection":
                await h3.aclose()
            elif sent.done():
                await (await sent).aclose()
            else:
                sent.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await sent
            await async_wait_until(released, 5, f"the {transport} request to be released")
        finally:
            await h3.aclose()
    assert "Traceback" not in caplog.text


def test_http3_needs_http2_and_tls(tls_files):
    """HTTP/3 is served by hypercorn, and QUIC is always TLS: anything else is refused."""
    with pytest.raises(ValueError, match="http3 needs http2 and TLS"):
        Settings(http3=True)
    with pytest.raises(ValueError, match="http3 needs http2 and TLS"):
        Settings(http3=True, tls_cert=str(tls_files.cert), tls_key=str(tls_files.key))


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--http3"], "http3 needs http2 and TLS"), (["--history", "0"], "history must be >= 1")],
)
def test_a_bad_setting_is_a_usage_error_not_a_traceback(flags, message):
    """``pushlab serve`` with a setting out of range says which, exits 2, prints no traceback."""
    argv = [sys.executable, "-m", "servers", "--port", "0", *flags]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_http3_with_several_workers_is_refused(tls_files):
    """QUIC packets would reach whichever worker the kernel picks: one process only."""
    argv = [sys.executable, "-m", "servers", "--workers", "2", "--http2", "--http3"]
    argv += ["--tls-cert", str(tls_files.cert), "--tls-key", str(tls_files.key), "--port", "0"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--http3 need --workers 1" in done.stderr


async def test_h3_client_refuses_plain_http():
    """QUIC is always TLS: an ``http://`` URL is a clear error, not a hang."""
    async with httpx.AsyncClient(transport=H3Transport(), timeout=5) as h3:
        with pytest.raises(httpx.UnsupportedProtocol, match="https"):
            await h3.get("http://127.0.0.1:1/healthz")
