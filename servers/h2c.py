"""The lab's app under hypercorn: HTTP/2 without TLS (h2c, prior knowledge) and RFC 8441.

uvicorn speaks HTTP/1.1 only. hypercorn serves the same ``create_app(settings)`` over HTTP/2 and
announces ``SETTINGS_ENABLE_CONNECT_PROTOCOL``, so a WebSocket can ride an HTTP/2 stream.
:class:`HypercornThread` runs it in a thread (tests); ``python -m servers.h2c --port P`` runs it
as a process and prints ``listening on 127.0.0.1:PORT`` once it accepts (``pushlab explain h2``
starts it that way: a client starts a server process, it never imports one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import threading
import time

from hypercorn.asyncio import serve
from hypercorn.config import Config

from feed.settings import Settings
from servers.app import create_app


def _listen(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


async def _serve(settings: Settings, sock: socket.socket, stop: asyncio.Event) -> None:
    config = Config()
    # Bound by the caller and handed over (fd://): nobody can take the port before hypercorn
    # listens. hypercorn owns (closes) the dup.
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.loglevel = "WARNING"
    await serve(create_app(settings), config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


class HypercornThread:
    """The lab's app under hypercorn on ``127.0.0.1:port``, in a daemon thread."""

    def __init__(self, settings: Settings) -> None:
        self._sock = _listen(0)
        self.port = int(self._sock.getsockname()[1])
        self._settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        await _serve(self._settings, self._sock, self._stop)

    def __enter__(self) -> HypercornThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise ConnectionError("hypercorn did not start")

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._sock.close()


async def _main(settings: Settings, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sock = _listen(port)
    print(f"listening on 127.0.0.1:{sock.getsockname()[1]}", flush=True)
    try:
        await _serve(settings, sock, stop)
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
