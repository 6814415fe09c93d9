"""TLS on uvicorn (HTTP/1.1) and hypercorn (ALPN h2): what each server negotiates and answers."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys

import httpx
import pytest

from feed.settings import Settings
from servers.launch import ServerProcess, ServerThread, healthy

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
