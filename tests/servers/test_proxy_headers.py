"""The client address behind a proxy: X-Forwarded-For only from PUSHLAB_TRUSTED_PROXIES.

The server listens on 127.0.0.1; clients bind other loopback source addresses (127.0.0.5 plays the
trusted proxy), so the direct peer the server sees is real, not a header.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from feed.settings import Settings
from servers.app import create_app
from servers.launch import ServerThread
from servers.runner import build_config

PROXY = "127.0.0.5"


async def open_ws(server: ServerThread, source: str, xff: str | None) -> ClientConnection:
    """A feed WebSocket from ``source``, carrying ``X-Forwarded-For: xff`` when given."""
    headers = {"X-Forwarded-For": xff} if xff is not None else None
    url = server.url.replace("http", "ws") + "/ws?topic=t"
    ws = await connect(url, additional_headers=headers, local_addr=(source, 0))
    assert '"ready"' in str(await ws.recv())
    return ws


async def refused_status(server: ServerThread, source: str, xff: str | None) -> int:
    with pytest.raises(InvalidStatus) as info:
        await open_ws(server, source, xff)
    return info.value.response.status_code


def remotes(caplog: Any) -> list[str]:
    """The client address of every connect record, as the app logged it."""
    records = [getattr(r, "pushlab", {}) for r in caplog.records]
    return [r["remote"].rsplit(":", 1)[0] for r in records if r.get("event") == "connect"]


async def test_forwarded_clients_are_counted_apart_through_a_trusted_proxy(serve, settings, caplog):
    """Two forwarded clients behind one trusted proxy each get their own cap, on every route."""
    caplog.set_level("INFO", logger="pushlab.conn")
    server = serve(settings.replace(max_conns_per_ip=1, trusted_proxies=PROXY))
    a = await open_ws(server, PROXY, "203.0.113.1")
    b = await open_ws(server, PROXY, "203.0.113.2")
    try:
        assert remotes(caplog) == ["203.0.113.1", "203.0.113.2"]
        # The rightmost untrusted entry counts: what the client wrote on the left is not believed.
        assert await refused_status(server, PROXY, "198.51.100.7, 203.0.113.1") == 429
        # The proxy itself in the chain is skipped.
        c = await open_ws(server, PROXY, "203.0.113.3, 127.0.0.5")
        await c.close()
        # SSE goes through PushlabApp's bare-route dispatch: the same address applies there.
        transport = httpx.AsyncHTTPTransport(local_address=PROXY)
        async with httpx.AsyncClient(transport=transport, trust_env=False) as http:
            r = await http.get(
                f"{server.url}/sse?topic=t", headers={"X-Forwarded-For": "203.0.113.2"}
            )
        assert r.status_code == 429 and r.json()["error"] == "too_many_connections"
        assert remotes(caplog)[-1] == "203.0.113.3"
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("trusted", ["", PROXY], ids=["nobody", "another-address"])
async def test_an_untrusted_peer_cannot_choose_its_address(serve, settings, caplog, trusted):
    """A peer outside trusted_proxies (even 127.0.0.1, which uvicorn trusts by default) is counted
    as itself whatever X-Forwarded-For it sends."""
    caplog.set_level("INFO", logger="pushlab.conn")
    server = serve(settings.replace(max_conns_per_ip=1, trusted_proxies=trusted))
    a = await open_ws(server, "127.0.0.1", "203.0.113.1")
    try:
        assert await refused_status(server, "127.0.0.1", "203.0.113.2") == 429
        assert remotes(caplog) == ["127.0.0.1"]
    finally:
        await a.close()


def test_trusted_proxies_setting():
    """IPs and CIDRs (host bits allowed), from the environment; anything else is an error."""
    s = Settings.from_env({"PUSHLAB_TRUSTED_PROXIES": " 10.1.2.3/8, 127.0.0.1 ,::1"})
    assert s.trusted_proxy_list == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]
    config = build_config(s, create_app(s), log_config=None)
    assert config.proxy_headers and config.forwarded_allow_ips == s.trusted_proxy_list
    assert Settings().trusted_proxy_list == []
    assert not build_config(Settings(), create_app(Settings()), log_config=None).proxy_headers
    with pytest.raises(ValueError, match="'nginx' is not an IP or CIDR"):
        Settings(trusted_proxies="127.0.0.1,nginx")
