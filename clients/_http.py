"""httpx plumbing shared by the HTTP transports."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from clients.base import Counters, Cuttable, FeedClient
from clients.h3http import H3Transport
from feed.codec import decode_event, dumps, loads
from feed.events import FeedEvent
from feed.exceptions import FatalTransportError


def make_http(
    read_timeout_s: float | None,
    verify: ssl.SSLContext | bool = True,
    http2: bool = False,
    http3: bool = False,
) -> httpx.AsyncClient:
    """One pooled client per feed client; ``read_timeout_s`` bounds silence on a connection.

    ``http2``: offer ALPN ``h2`` (and ``http/1.1``) over TLS; httpx then speaks HTTP/2 (the ``h2``
    library) when the server picks it. Plain ``http://`` stays HTTP/1.1. ``http3``: HTTP/3 over
    QUIC to the URL's port on UDP (:mod:`clients.h3http`; ``https://`` only).
    """
    timeout = httpx.Timeout(connect=5.0, read=read_timeout_s, write=5.0, pool=5.0)
    if http3:
        return httpx.AsyncClient(timeout=timeout, trust_env=False, transport=H3Transport(verify))
    return httpx.AsyncClient(timeout=timeout, trust_env=False, verify=verify, http2=http2)


@asynccontextmanager
async def session_http(
    client: FeedClient, read_timeout_s: float | None
) -> AsyncIterator[httpx.AsyncClient]:
    """The httpx client of one session of ``client``: its shared one (left open), else a pool
    of its own on the HTTP version it asks for."""
    if client.http is not None:
        yield client.http
        return
    async with make_http(read_timeout_s, client.verify, client.http2, client.http3) as http:
        yield http


class SocketTracker:
    """An httpcore ``trace`` hook that remembers the socket of the newest connection.

    Each feed client has its own pool and sends one request at a time, so the newest connection
    is the one in use; :meth:`FeedClient.drop` cuts it even while a long poll waits for headers.
    """

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.sock: Cuttable | None = None

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            self.sock = info["return_value"].get_extra_info("socket")
            self.counters.connections += 1


async def raise_for_status(response: httpx.Response) -> None:
    """4xx other than 408/429 are fatal (the request itself is wrong); the rest retry."""
    if response.is_success:
        return
    body = (await response.aread())[:500].decode(errors="replace")
    if 400 <= response.status_code < 500 and response.status_code not in (408, 425, 429):
        raise FatalTransportError(
            f"HTTP {response.status_code}: {body}", status=response.status_code
        )
    response.raise_for_status()


def parse_events(raw: list[object]) -> list[tuple[FeedEvent, int]]:
    """Events of a poll body, each with its JSON size (orjson's compact form is the server's)."""
    return [(decode_event(e), len(dumps(e))) for e in raw if isinstance(e, dict)]


__all__ = [
    "SocketTracker", "loads", "make_http", "parse_events", "raise_for_status", "session_http",
]  # fmt: skip
