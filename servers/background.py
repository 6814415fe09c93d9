"""The app under uvicorn in a background thread: for commands that drive it from a browser."""

from __future__ import annotations

import threading
import time
from types import TracebackType

from feed.settings import Settings
from servers.app import create_app
from servers.runner import PushlabServer, build_config


class BackgroundServer:
    """``with BackgroundServer(settings) as url:`` serves until the block ends."""

    def __init__(self, settings: Settings) -> None:
        app = create_app(settings)
        # The same uvicorn config as `pushlab serve` and the bench's servers (WS protocol class,
        # deflate off, the app's own heartbeat), so a browser run measures that server. The host
        # process owns logging: uvicorn's dictConfig would replace its handlers (warnings still
        # reach stderr through logging's last-resort handler).
        config = build_config(settings, app, log_level="warning", log_config=None)
        self.url = f"http://{settings.host}:{settings.port}"
        self._server = PushlabServer(config, app)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self.url

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(10)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
