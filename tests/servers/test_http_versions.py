"""TLS on uvicorn (HTTP/1.1) and hypercorn (ALPN h2): what each server negotiates and answers."""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import subprocess
import sys

import httpx
import psutil
import pytest

from feed.settings import Settings
from servers.launch import ServerProcess, ServerThread, healthy
from tests.servers.test_long_poll import leaving_frees_the_wait

OFFER = ["h2", "http/1.1"]


def tls_settings(settings: Settings, tls_files, *, http2: bool = False) -> Settings:
    return settings.replace(tls_cert=str(tls_files.cert), tls_key=str(tls_files.key), http2=http2)


def negotiated(server: ServerThread | ServerProcess, ctx: ssl.SSLContext) -> str | None:
    """The ALPN protocol the server picks when offered h2 and http/1.1."""
    ctx.set_alpn_protocols(OFFER)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.selected_alpn_protocol()


@pytest.mark.parametrize(("http2", "alpn"), [(False, "http/1.1"), (True, "h2")])
def test_alpn_picks_the_servers_protocol(serve, settings, tls_files, http2, alpn):
    """Offered h2 and http/1.1, uvicorn answers http/1.1 and hypercorn h2."""
    server = serve(tls_settings(settings, tls_files, http2=http2))
    assert server.url.startswith("https://")
    assert server.server == ("hypercorn" if http2 else "uvicorn")
    assert negotiated(server, tls_files.client_context()) == alpn


@pytest.mark.parametrize("http2", [False, True])
async def test_https_health_verifies_against_the_local_ca(serve, settings, tls_files, http2):
    """/healthz over https, the certificate checked against the lab's CA; h2 when offered."""
    server = serve(tls_settings(settings, tls_files, http2=http2))
    async with httpx.AsyncClient(verify=tls_files.client_context(), http2=True) as http:
        r = await http.get(server.url + "/healthz")
    assert r.status_code == 200
    assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")


@pytest.mark.parametrize("http2", [False, True])
def test_plain_http_to_a_tls_port_gets_no_answer_and_no_traceback(
    serve, settings, tls_files, caplog, http2
):
    """A plaintext request on the TLS port is refused at the TLS layer; the server lives on."""
    server = serve(tls_settings(settings, tls_files, http2=http2))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        got = s.recv(4096)
    assert not got.startswith(b"HTTP/1.1 200")
    assert healthy(server.url)
    assert "Traceback" not in caplog.text


def test_tls_settings_go_together():
    """A certificate without its key (or the reverse) is refused when settings are built."""
    with pytest.raises(ValueError, match="both or neither"):
        Settings(tls_cert="/x.pem")


@pytest.mark.parametrize("http2", [False, True])
def test_process_serves_tls_from_flags(tls_files, http2):
    """``python -m servers --tls-cert --tls-key [--http2]``: the process speaks what it was told."""
    args = ["--tls-cert", str(tls_files.cert), "--tls-key", str(tls_files.key)]
    args += ["--http2"] if http2 else []
    with ServerProcess(args=args) as server:
        assert server.url.startswith("https://")
        assert negotiated(server, tls_files.client_context()) == ("h2" if http2 else "http/1.1")
        code = server.stop()
    # uvicorn re-raises the SIGTERM it handled; hypercorn's runner returns.
    assert code in (0, -signal.SIGTERM), server.log()
    assert "Traceback" not in server.log()


def test_explain_h2_server_module_runs():
    """``python -m servers.http2 --help`` (the process ``pushlab explain h2`` starts)."""
    out = subprocess.run(
        [sys.executable, "-m", "servers.http2", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--port" in out.stdout


async def test_hypercorn_frees_a_long_poll_whose_client_left(serve, settings):
    """Under hypercorn (no uvicorn cycle to watch) the parked long poll watches ``receive()``."""
    await leaving_frees_the_wait(serve(settings, server="hypercorn").url)


class _LoopSeen:
    """Records the class of the event loop that serves each request."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        LOOPS.add(type(asyncio.get_running_loop()).__module__.split(".")[0])
        await self.app(scope, receive, send)


LOOPS: set[str] = set()


@pytest.mark.parametrize("http2", [False, True])
def test_both_servers_run_on_uvloop(serve, settings, tls_files, http2):
    """uvicorn and hypercorn serve on the same event loop, uvloop: h1 and h2 figures compare
    servers and protocols, not event loops."""
    LOOPS.clear()
    server = serve(
        tls_settings(settings, tls_files, http2=http2),
        customize=lambda app: app.add_middleware(_LoopSeen),
    )
    with httpx.Client(verify=tls_files.client_context()) as http:
        assert http.get(f"{server.url}/poll", params={"topic": "t"}).status_code == 200
    assert LOOPS == {"uvloop"}


def test_hypercorn_process_holds_a_tls_connection_in_little_memory(tls_files):
    """``pushlab serve --http2``: 200 idle TLS streams grow the process by well under 160 KiB
    each. asyncio's own SSL transport zero-fills a 256 KiB read buffer per connection (it
    measured 316 KiB per stream here); servers/http2.py runs hypercorn on uvloop for that."""
    env = {"PUSHLAB_TLS_CERT": str(tls_files.cert), "PUSHLAB_TLS_KEY": str(tls_files.key),
           "PUSHLAB_HTTP2": "1", "PUSHLAB_SSE_IMPL": "pushlab"}  # fmt: skip
    server = ServerProcess(env=env).start()
    held: list[ssl.SSLSocket] = []
    try:
        ctx = tls_files.client_context()
        ctx.set_alpn_protocols(["http/1.1"])

        def open_stream() -> None:
            raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            held.append(tls)
            tls.sendall(b"GET /sse?topic=t HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert b" 200 " in tls.recv(4096)

        for _ in range(20):  # warm-up: allocator arenas, first-use imports
            open_stream()
        before = psutil.Process(server.pid).memory_info().rss
        for _ in range(200):
            open_stream()
        grown = (psutil.Process(server.pid).memory_info().rss - before) / 200 / 1024
    finally:
        for s in held:
            s.close()
        server.stop()
    assert grown < 160, f"{grown:.0f} KiB per idle TLS connection"
