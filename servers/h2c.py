"""The lab's app under hypercorn: HTTP/2 without TLS (h2c, prior knowledge) and RFC 8441.

uvicorn speaks HTTP/1.1 only. hypercorn serves the same ``create_app(settings)`` over HTTP/2 and
announces ``SETTINGS_ENABLE_CONNECT_PROTOCOL``, so a WebSocket can ride an HTTP/2 stream.
:class:`servers.launch.ServerThread` runs it in a thread (``server="hypercorn"``: tests);
``python -m servers.h2c --port P`` runs it as a process and prints ``listening on 127.0.0.1:PORT``
once it accepts (``pushlab explain h2`` starts it that way: a client starts a server process,
it never imports one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys

from fastapi import FastAPI
from hypercorn.asyncio import serve
from hypercorn.config import Config

from feed.settings import Settings
from servers.app import create_app


def _listen(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


async def serve_h2c(app: FastAPI, sock: socket.socket, stop: asyncio.Event) -> None:
    """Serve ``app`` under hypercorn on ``sock`` (bound, maybe listening) until ``stop`` is set."""
    config = Config()
    # Bound by the caller and handed over (fd://): nobody can take the port before hypercorn
    # listens. hypercorn owns (closes) the dup.
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.loglevel = "WARNING"
    await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


async def _main(settings: Settings, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sock = _listen(port)
    print(f"listening on 127.0.0.1:{sock.getsockname()[1]}", flush=True)
    try:
        await serve_h2c(create_app(settings), sock, stop)
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m servers.h2c [--port P]``: serve until SIGTERM/SIGINT (ticker off)."""
    parser = argparse.ArgumentParser(prog="python -m servers.h2c", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    args = parser.parse_args(argv)
    asyncio.run(_main(Settings.from_env(ticker_rate=0), args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
