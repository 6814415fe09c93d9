"""Running the app under uvicorn with a graceful, lossless shutdown.

uvicorn alone, on SIGTERM, closes its listeners, sends WebSockets 1012, leaves SSE streams and
long polls to run until ``timeout_graceful_shutdown`` and only then runs the lifespan shutdown.
:class:`PushlabServer` drains first: it stops accepting, sets the app's ``shutdown`` event (long
polls answer 204 at once, new streams get 503), closes every subscription with reason
``shutdown`` (WebSockets close 1001, SSE streams end with ``event: end``), waits up to
``shutdown_timeout_s`` for the connections to go, and then hands over to uvicorn's own shutdown.
The lifespan then saves the history snapshot when ``snapshot_path`` is set.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI

from feed.broker import SHUTDOWN
from feed.settings import Settings
from servers.fastpath.http_protocol import http_protocol
from servers.fastpath.ws_protocol import uvicorn_ws
from servers.logs import install_redaction, log_config
from servers.state import AppState

logger = logging.getLogger("pushlab.server")


def build_config(settings: Settings, app: FastAPI, **overrides: Any) -> uvicorn.Config:
    """The uvicorn config every pushlab server uses (CLI, subprocess and in-thread tests)."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": log_config(settings.log_level, settings.log_json),
        # httptools with a head deadline and size limits (servers/fastpath/http_protocol.py).
        "http": http_protocol(settings),
        "timeout_keep_alive": settings.http_idle_timeout_s,
        "ws": uvicorn_ws(settings.ws_impl),
        "ws_max_size": settings.ws_max_message_bytes,
        # The app runs its own heartbeat (servers/websocket/session.py); see the docstring there.
        "ws_ping_interval": None,
        "ws_ping_timeout": None,
        # uvicorn negotiates permessage-deflate unless told not to. For the feed's 64-byte
        # events it cost 1.18x the server CPU per event (results/20261204T175711Z_compression),
        # and Node's ws has it off by default: off unless ws_compression is set.
        "ws_per_message_deflate": settings.ws_compression,
        "timeout_graceful_shutdown": settings.shutdown_timeout_s,
        # The client address (per-IP cap, logs, every route): uvicorn's ProxyHeadersMiddleware
        # wraps the whole app, HTTP and WebSocket scopes alike, so it also covers PushlabApp's bare
        # routes. It replaces scope["client"] with the rightmost X-Forwarded-For entry outside
        # forwarded_allow_ips, and only when the direct peer is inside it. uvicorn's own default
        # trusts 127.0.0.1 and ::1 (any local process could claim any address); pushlab trusts only
        # the configured proxies and, with none, does not read the header at all.
        "proxy_headers": bool(settings.trusted_proxy_list),
        "forwarded_allow_ips": settings.trusted_proxy_list,
        "lifespan": "on",
    }
    if settings.tls:
        options |= {
            "ssl_certfile": settings.tls_cert,
            "ssl_keyfile": settings.tls_key,
            "ssl_context_factory": _http11_alpn,
        }
    options.update(overrides)
    config = uvicorn.Config(app, **options)
    install_redaction()
    return config


def _http11_alpn(config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's TLS context, answering ALPN with ``http/1.1`` (RFC 7301): uvicorn sets no ALPN,
    and a client that offered ``h2`` should hear which protocol it got, not infer it."""
    context = default()
    context.set_alpn_protocols(["http/1.1"])
    return context


class PushlabServer(uvicorn.Server):
    """uvicorn's server with :func:`drain` run before its own shutdown."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        st: AppState | None = getattr(self.app.state, "pushlab", None)
        if st is not None and not self.force_exit:
            start = time.monotonic()
            await drain(st)
            # One budget for the whole shutdown: uvicorn gets what the drain left over.
            left = st.settings.shutdown_timeout_s - (time.monotonic() - start)
            # Typed int in uvicorn but only handed to asyncio.wait_for, which takes a float.
            self.config.timeout_graceful_shutdown = max(0.1, left)  # type: ignore[assignment]
        await super().shutdown(sockets)


async def drain(st: AppState) -> None:
    """Tell every client goodbye and wait (bounded) for them to go."""
    start = time.monotonic()
    st.shutdown.set()
    kicked = await st.broker.kick(None, SHUTDOWN)
    clean = await st.conns.wait_empty(st.settings.shutdown_timeout_s)
    logger.info(
        "drained %d subscriptions in %.3f s%s",
        kicked,
        time.monotonic() - start,
        "" if clean else f"; {len(st.conns.live)} connections still open",
    )
