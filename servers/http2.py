"""The lab's app under hypercorn: HTTP/2 over TLS (ALPN ``h2``) or without (h2c), RFC 8441, and
HTTP/3 (``settings.http3``: QUIC on UDP at the TCP port's number, through aioquic).

uvicorn speaks HTTP/1.1 only. hypercorn serves the same ``create_app(settings)`` over HTTP/2 and
announces ``SETTINGS_ENABLE_CONNECT_PROTOCOL``, so a WebSocket can ride an HTTP/2 stream. With
``settings.tls_cert``/``tls_key`` it speaks TLS and offers ALPN ``h2`` then ``http/1.1`` (a
client that offers only ``http/1.1``, like the lab's control calls, gets HTTP/1.1 over TLS);
without, HTTP/1.1 and h2c by prior knowledge on the same port.

One way to start it: :class:`servers.launch.ServerThread` (``server="hypercorn"`` or
``settings.http2``) in a thread, ``pushlab serve --http2`` / :class:`servers.launch.ServerProcess`
with ``http2`` set as a process. ``python -m servers.http2 --port P`` prints ``listening on
127.0.0.1:PORT`` once it accepts (``pushlab explain h2`` starts it that way: a client starts a
server process, it never imports one).

HTTP/3 serves the HTTP transports (poll, long poll, SSE, the NDJSON stream); hypercorn 0.18's
HTTP/3 never tells a request that its client left, which :mod:`servers.fastpath.hypercorn_h3`
mends. WebSocket over HTTP/3 (RFC 9220) is not measured: no browser ships it
(docs/webtransport.md) and the lab has no client for it.

Deliberate divergences from the uvicorn runner (:mod:`servers.runner`): no fast paths (they hook
uvicorn's HTTP/1.1 cycle; :mod:`servers.fastpath`), no head-size guard of our own (hypercorn's
h11/h2 limits apply), hypercorn's own WebSocket implementation. The shutdown drains like uvicorn's
(:func:`servers.runner.drain`: goodbyes first), then hypercorn waits ``shutdown_timeout_s``.
Known hypercorn 0.18 fault: over h2, after a POST without a body that the app answers without
reading it (``POST /admin/ticker?rate=``), the next request on that connection ends the whole
connection, and asyncio logs the TLS close error (pinned by
``tests/clients/test_http_versions.py``); the lab's control calls (the bench's ticker) therefore
go over HTTP/1.1 (ALPN ``http/1.1`` on the same port). Publishes carry a body and work on h2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop
from fastapi import FastAPI
from hypercorn.asyncio import serve
from hypercorn.config import Config

from feed.settings import Settings
from servers.app import create_app
from servers.fastpath.hypercorn_h3 import install as install_h3_streams
from servers.runner import drain
from servers.state import AppState

T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop, the loop uvicorn picks (``loop="auto"``), so the HTTP/1.1 and
    HTTP/2 figures share an event loop. asyncio's own SSL transport zero-fills a 256 KiB read
    buffer per connection (CPython's ``sslproto``), so all of it is resident; uvloop's leaves
    untouched pages unmapped (tests/servers/test_http_versions.py bounds the RSS per idle TLS
    connection)."""
    return uvloop.run(main)


def _listen(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


def build_config(settings: Settings, sock: socket.socket) -> Config:
    """hypercorn's config for ``settings`` on ``sock`` (bound by the caller)."""
    config = Config()
    # Bound by the caller and handed over (fd://): nobody can take the port before hypercorn
    # listens. hypercorn owns (closes) the dup.
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.loglevel = settings.log_level.upper()
    config.keep_alive_timeout = settings.http_idle_timeout_s
    config.graceful_timeout = settings.shutdown_timeout_s
    config.websocket_max_message_size = settings.ws_max_message_bytes
    if settings.tls:
        # hypercorn's own context: TLS >= 1.2 and no compression (RFC 9113 9.2), ALPN h2 first.
        config.certfile, config.keyfile = settings.tls_cert, settings.tls_key
    if settings.http3:
        # HTTP/3 on UDP at the TCP port's number, as browsers expect from Alt-Svc (hypercorn
        # announces it on every response); bound here so a taken port fails the start loudly.
        install_h3_streams()
        config.quic_bind = [f"fd://{_udp_twin(sock)}"]
    return config


def _udp_twin(sock: socket.socket) -> int:
    """A UDP socket bound to ``sock``'s address; its descriptor, now hypercorn's to close."""
    udp = socket.socket(sock.family, socket.SOCK_DGRAM)
    try:
        udp.bind(sock.getsockname()[:2])
    except OSError as exc:
        udp.close()
        raise OSError(exc.errno, f"HTTP/3: UDP {sock.getsockname()[:2]} is taken: {exc}") from None
    return udp.detach()


async def serve_http2(
    app: FastAPI, settings: Settings, sock: socket.socket, stop: asyncio.Event
) -> None:
    """Serve ``app`` under hypercorn on ``sock`` until ``stop`` is set, then drain."""

    async def shutdown() -> None:
        await stop.wait()
        st: AppState | None = getattr(app.state, "pushlab", None)
        if st is not None:
            await drain(st)

    config = build_config(settings, sock)
    await serve(app, config, shutdown_trigger=shutdown)  # type: ignore[arg-type]


async def run(settings: Settings, sock: socket.socket) -> None:
    """Serve ``create_app(settings)`` on ``sock`` until SIGTERM/SIGINT (the process entry)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve_http2(create_app(settings), settings, sock, stop)


async def _main(settings: Settings, port: int) -> None:
    sock = _listen(port)
    print(f"listening on 127.0.0.1:{sock.getsockname()[1]}", flush=True)
    try:
        await run(settings, sock)
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m servers.http2 [--port P]``: serve until SIGTERM/SIGINT (ticker off)."""
    parser = argparse.ArgumentParser(prog="python -m servers.http2", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    args = parser.parse_args(argv)
    run_loop(_main(Settings.from_env(ticker_rate=0), args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
