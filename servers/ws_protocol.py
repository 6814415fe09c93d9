"""uvicorn's websockets-sansio protocol with lean per-connection state (``ws_impl=pushlab-sansio``).

Same frames, same code paths: every method that reads or writes the socket is uvicorn 0.54's own
(:class:`~uvicorn.protocols.websockets.websockets_sansio_impl.WebSocketsSansIOProtocol`). What
changes is what an open socket keeps (tracemalloc over 1,000 idle feed sockets,
``python -m experiments.idle_memory ws 1000``; figures in docs/performance.md):

- the inbox: ``asyncio.Queue`` allocates three deques and an ``Event`` with a fourth (~3 KiB per
  socket); :class:`Inbox` is a list and a future, and only while a message waits or a reader does;
- the flow-control flag: ``asyncio.Event`` (another deque) becomes :class:`Flag`;
- the instance ``__dict__``: uvicorn sets 30+ attributes per connection, which overflows CPython's
  shared-key instance dicts (a private 1.5 KiB table per socket). Values that are the same for
  every connection of a server are read through the config here, and the initial per-connection
  values are class defaults, so an open socket's dict stays shared-key;
- the upgrade request (its headers) and the prepared response are dropped once the handshake is
  answered.

Autobahn (``make conformance``) runs against this class like the other implementations.
"""

from __future__ import annotations

import asyncio
import logging
from operator import attrgetter
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.server import ServerProtocol

NAME = "pushlab-sansio"
IMPORT_PATH = "servers.ws_protocol:LeanSansIOProtocol"
_LOGGER = logging.getLogger("uvicorn.error")


def uvicorn_ws(ws_impl: str) -> str:
    """The value of uvicorn's ``ws`` option for a ``ws_impl`` setting."""
    return IMPORT_PATH if ws_impl == NAME else ws_impl


class Inbox:
    """What uvicorn's protocol needs of ``asyncio.Queue``: ``put_nowait``, ``get``, ``empty``.

    Unbounded like uvicorn's queue (uvicorn pauses reading while a message is queued).
    """

    __slots__ = ("_items", "_waiters")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiters: list[asyncio.Future[None]] | None = None

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)
                return

    async def get(self) -> Any:
        items = self._items
        while not items:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            waiters = self._waiters
            waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if items and waiter.done() and not waiter.cancelled():
                    self._wake()  # woken, but leaving (cancelled): pass the wake-up on
                raise
            finally:
                waiters.remove(waiter)
                if not waiters:
                    self._waiters = None
        return items.pop(0)


class Flag:
    """What uvicorn's protocol needs of ``asyncio.Event``: set, clear, is_set, wait."""

    __slots__ = ("_set", "_waiters")

    def __init__(self, value: bool = True) -> None:
        self._set = value
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class LeanSansIOProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol; only per-connection state differs (see module)."""

    # uvicorn's initial per-connection values, as class defaults (assignments shadow them).
    transport: Any = None
    server: tuple[str, int | None] | None = None
    client: tuple[str, int] | None = None
    scheme: Any = None
    handshake_initiated = False
    handshake_complete = False
    close_sent = False
    disconnected = False
    close_timer: asyncio.TimerHandle | None = None
    close_timeout = 10.0
    initial_response: tuple[int, list[tuple[str, str]], bytes] | None = None
    read_paused = False
    ping_timer: asyncio.TimerHandle | None = None
    pong_timer: asyncio.TimerHandle | None = None
    pending_ping_payload: bytes | None = None
    ping_sent_at = 0.0
    last_ping_rtt = 0.0
    curr_msg_data_type: Any = "bytes"
    logger = _LOGGER

    def __init__(  # noqa: PLR0913 - uvicorn's signature
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # Deliberately not super().__init__(): it is what this class replaces (see the module
        # docstring); tests/servers/test_ws_protocol.py checks that every attribute uvicorn's
        # __init__ sets is provided here, so an upgrade that adds one fails there.
        if not config.loaded:
            config.load()  # pragma: no cover - uvicorn loads before creating protocols
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.loop = _loop or asyncio.get_event_loop()
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.frames = []
        extensions = []
        if config.ws_per_message_deflate:
            # uvicorn's own offer, unchanged.
            extensions = [
                ServerPerMessageDeflateFactory(
                    server_max_window_bits=12,
                    client_max_window_bits=12,
                    compress_settings={"memLevel": 5},
                )
            ]
        self.conn = ServerProtocol(
            extensions=extensions, max_size=config.ws_max_size, logger=_LOGGER
        )

    # Per-server values, read through the config and server state rather than copied per socket.
    app = property(attrgetter("config.loaded_app"))
    root_path = property(attrgetter("config.root_path"))
    asgi_version = property(attrgetter("config.asgi_version"))
    ping_interval = property(attrgetter("config.ws_ping_interval"))
    ping_timeout = property(attrgetter("config.ws_ping_timeout"))
    connections = property(attrgetter("server_state.connections"))
    tasks = property(attrgetter("server_state.tasks"))
    default_headers = property(attrgetter("server_state.default_headers"))

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        # uvicorn keeps the request for nothing after this point (the scope has its own copy of
        # the headers); websockets' handshake parser frame still refers to it for the socket's
        # lifetime, so its headers are emptied too.
        del self.request
        event.headers.clear()

    def start_keepalive(self) -> None:
        # uvicorn calls this exactly once, right after writing the 101 response: the prepared
        # response (and its headers) is not needed any more.
        self.response = None  # type: ignore[assignment]
        super().start_keepalive()
