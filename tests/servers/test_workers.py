"""``pushlab serve --workers N``: the checks, and N workers started by the one launcher."""

from __future__ import annotations

import httpx
import psutil
import pytest

from clients import CLIENTS
from feed.settings import Settings
from servers.launch import ServerProcess, healthy
from servers.workers import check, reuse_port_socket
from tests.clients.test_delivery import FAST_RETRY, Collector, publish, ready
from tests.redis_support import SHARED_URL


def test_workers_refuse_a_private_feed() -> None:
    """N > 1 on the memory broker would serve N different feeds: refused, with the reason."""
    with pytest.raises(ValueError, match="shared broker"):
        check(Settings(port=8123), 2)
    with pytest.raises(ValueError, match="fixed --port"):
        check(Settings(port=0, broker="redis://127.0.0.1:6379/0"), 2)
    with pytest.raises(ValueError, match=">= 1"):
        check(Settings(), 0)
    check(Settings(port=8123, broker="redis://127.0.0.1:6379/0"), 3)
    check(Settings(), 1)


def test_two_listeners_share_one_port() -> None:
    """SO_REUSEPORT lets a second worker bind the port the first holds."""
    a = reuse_port_socket("127.0.0.1", 0)
    try:
        b = reuse_port_socket("127.0.0.1", a.getsockname()[1])
        b.close()
    finally:
        a.close()


def _listening(pid: int, port: int) -> bool:
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
        for c in psutil.Process(pid).net_connections(kind="tcp")
    )


def test_launcher_runs_workers_on_its_port(redis_prefix: str) -> None:
    """ServerProcess(workers=2): two children, each listening on the launcher's port with the
    launcher's settings; the parent holds no listener of its own; SIGTERM stops all cleanly."""
    env = {"PUSHLAB_BROKER": SHARED_URL, "PUSHLAB_REDIS_PREFIX": redis_prefix}
    server = ServerProcess(env=env, workers=2).start()
    try:
        assert "--workers" in server.argv and healthy(server.url)
        children = psutil.Process(server.pid).children()
        assert len(children) == 2
        assert all(_listening(c.pid, server.port) for c in children)
        assert not _listening(server.pid, server.port)
        assert all(c.environ()["PUSHLAB_REDIS_PREFIX"] == redis_prefix for c in children)
    finally:
        code = server.stop()
    assert code == 0, server.log()


async def test_workers_serve_http2_over_tls(redis_prefix: str, tls_files) -> None:
    """Two hypercorn workers on one port (TLS, ALPN h2) serve one feed: HTTP/2 subscribers of
    SSE and of the RFC 8441 WebSocket, spread over both processes, each get the whole published
    sequence in order, whichever worker took the publishes."""
    env = {
        "PUSHLAB_BROKER": SHARED_URL, "PUSHLAB_REDIS_PREFIX": redis_prefix, "PUSHLAB_HTTP2": "1",
        "PUSHLAB_TLS_CERT": str(tls_files.cert), "PUSHLAB_TLS_KEY": str(tls_files.key),
    }  # fmt: skip
    server = ServerProcess(env=env, workers=2).start()
    try:
        children = psutil.Process(server.pid).children()
        verify = tls_files.client_context()
        subs: list[Collector] = []
        served: set[int] = set()
        # The kernel picks the worker by a hash of the 4-tuple: subscribe until both hold some
        # (all of 40 on one worker: odds 2**-39).
        while (len(subs) < 8 or len(served) < 2) and len(subs) < 40:
            transport = ("sse", "ws")[len(subs) % 2]
            c = Collector(
                CLIENTS[transport](server.url, "w", retry=FAST_RETRY, verify=verify, http2=True)
            )
            subs.append(c)
            await ready(c.client)
            served = {
                child.pid for child in children for conn in child.net_connections(kind="tcp")
                if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == server.port
            }  # fmt: skip
        async with httpx.AsyncClient(verify=verify, http2=True) as http:
            await publish(http, server.url, "w", 20)
        for c in subs:
            await c.until(20)
        for c in subs:
            await c.close()
    finally:
        code = server.stop()
    assert code == 0, server.log()
    assert len(served) == 2, "the kernel gave every connection to one worker"
    assert all(c.seqs == list(range(1, 21)) for c in subs)
    assert "Traceback" not in server.log()
