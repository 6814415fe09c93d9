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

And some answers differ, each to what the RFC asks or the log should say (docs/conformance.md,
docs/protocol.md):

- a close frame between the fragments of a message gets the ordinary closing handshake (the close
  echoed) instead of close 1002 (:class:`PushlabServerProtocol`; Autobahn case 7.1.5);
- ``Sec-WebSocket-Version`` other than 13 gets 426 with ``Sec-WebSocket-Version: 13`` (RFC 6455
  §4.2.2), not a bare 400;
- while the socket's write buffer is over its high-water mark (the peer does not read), only the
  most recent ping is answered, once the buffer drains (RFC 6455 §5.5.3 allows it): a peer that
  sends pings and never reads cannot grow the server by one pong per ping;
- a text message that is not UTF-8 is closed 1007 as before, logged as the peer's error (INFO, no
  traceback), and a refusal through the denial-response extension is no "ASGI callable returned
  without completing handshake" ERROR.

Everything here that depends on the pinned websockets' and uvicorn's internals (attribute and
method names, the code of the uvicorn methods it replaces or compensates for) is pinned by
tests/servers/test_ws_protocol.py, which fails on an upgrade that changes them.

Autobahn (``make conformance``) runs against this class like the other implementations.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from operator import attrgetter
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.exceptions import InvalidHeader, InvalidHeaderValue
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

NAME = "pushlab-sansio"
IMPORT_PATH = "servers.fastpath.ws_protocol:LeanSansIOProtocol"
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


def _reason(exc: Exception) -> str:
    """Why a handshake failed, for the log: a header's name but not its value, which can carry a
    token (``Sec-WebSocket-Protocol: bearer.<jwt>``)."""
    if isinstance(exc, InvalidHeader) and exc.name != "Sec-WebSocket-Version":
        return f"{'missing' if exc.value is None else 'invalid'} {exc.name} header"
    return str(exc)


class PushlabServerProtocol(ServerProtocol):
    """websockets' sans-I/O server protocol with two answers of RFC 6455 and pong coalescing."""

    # Pong coalescing (see the module docstring): set by LeanSansIOProtocol from the transport's
    # flow control. Class defaults, so a socket that never needs them keeps no per-socket state.
    hold_pongs = False
    held_pong: bytes | None = None

    def accept(self, request: Request) -> Response:
        response = super().accept(request)
        exc = self.handshake_exc
        if isinstance(exc, InvalidHeaderValue) and exc.name == "Sec-WebSocket-Version":
            # RFC 6455 §4.2.2: a version the server does not speak gets "an appropriate HTTP
            # error code (such as 426 Upgrade Required) and a |Sec-WebSocket-Version| header
            # field indicating the version(s) the server is capable of understanding".
            response = self.reject(
                HTTPStatus.UPGRADE_REQUIRED, f"Failed to open a WebSocket connection: {exc}.\n"
            )
            response.headers["Sec-WebSocket-Version"] = "13"
        if exc is not None:
            _LOGGER.info("WebSocket upgrade refused (%d): %s", response.status_code, _reason(exc))
        return response

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            # websockets answers a close that arrives while a fragmented message is incomplete
            # with 1002 "incomplete fragmented message". RFC 6455 §5.4 lets control frames
            # arrive between fragments, and a close ends the connection: the unfinished message
            # is abandoned (§1.4, "discards any further data") and the close is answered like
            # any other (§5.5.1, echoing its code). Forgetting the open message first makes
            # websockets do exactly that.
            self.current_size = None
        elif frame.opcode is Opcode.PING and self.hold_pongs:
            # §5.5.3: an endpoint that has not yet answered earlier pings "MAY elect to send a
            # Pong frame for only the most recently processed Ping frame".
            self.held_pong = bytes(frame.data)
            self.events.append(frame)
            return
        super().recv_frame(frame)

    def release_pong(self) -> None:
        """Stop holding pongs; answer the most recent ping held, if the connection is open."""
        self.hold_pongs = False
        pong, self.held_pong = self.held_pong, None
        if pong is not None and self.state is State.OPEN:
            self.send_pong(pong)


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
    conn: PushlabServerProtocol

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
        self.conn = PushlabServerProtocol(
            extensions=extensions, max_size=config.ws_max_size, logger=_LOGGER
        )

    # Per-server values, read through the config and server state rather than copied per socket.
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

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        """The ASGI app (uvicorn's ``run_asgi`` calls ``self.app``), then one fix-up of state."""
        await self.config.loaded_app(scope, receive, send)
        if self.initial_response is not None and self.close_sent:
            # A refusal through the denial-response extension (``send_denial_response``) is
            # complete: uvicorn 0.54 wrote it and closed the transport, but leaves
            # handshake_complete unset, so run_asgi would log ERROR "ASGI callable returned
            # without completing handshake" for every refused upgrade (uvicorn PR #3138, open).
            self.handshake_complete = True

    def send_receive_event_to_app(self) -> None:
        # uvicorn's (0.54), but for a text message that is not UTF-8: the same close 1007, logged
        # as what it is, the peer's bad input (INFO with the reason), where uvicorn logs an ERROR
        # with the UnicodeDecodeError traceback.
        frames = self.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self.frames = []
        if self.close_sent:
            # The app is past `websocket.close`: discard the message rather than queueing
            # it, so reads stay active until the peer's close reply arrives.
            return
        if self.curr_msg_data_type == "text":
            try:
                text = data.decode()
            except UnicodeDecodeError as exc:
                self.logger.info(
                    '%s - "WebSocket %s" closed 1007: invalid UTF-8 in a text message (%s)',
                    get_client_addr(self.scope),
                    get_path_with_query_string(self.scope),
                    exc.reason,
                )
                self.conn.send_close(1007, "invalid UTF-8")
                self.handle_parser_exception()
                return
            self.queue.put_nowait({"type": "websocket.receive", "text": text})
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def pause_writing(self) -> None:
        super().pause_writing()
        self.conn.hold_pongs = True

    def resume_writing(self) -> None:
        super().resume_writing()
        self.conn.release_pong()
        output = self.conn.data_to_send()
        if output:
            self.transport.write(b"".join(output))
