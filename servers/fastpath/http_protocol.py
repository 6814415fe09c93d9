"""uvicorn's httptools HTTP/1.1 protocol with a deadline and size limits on the request head.

uvicorn 0.54 reads a request head for as long as the client cares to send it: no deadline (a
connection that trickles one byte a second, or sends nothing, holds its file descriptor forever),
no size limit (llhttp has none: a 32 MB header value is buffered whole) and no cap on connections
still sending one. A WebSocket upgrade is worse: uvicorn hands the head to websockets, whose own
limits (8,192-byte lines, 128 headers) then fail the handshake without an answer. Here:

- a head must arrive within ``http_header_timeout_s`` of the connection (or of its first byte,
  for a later request on a keep-alive connection), else ``408``;
- a request target over :data:`MAX_TARGET_BYTES` gets ``414``; a header line over
  :data:`MAX_LINE_BYTES`, more than ``http_max_headers`` headers or a head over
  ``http_max_head_bytes`` get ``431``; a head llhttp cannot parse gets ``400``;
- at most ``http_max_pending`` connections may be waiting for their head: a new one beyond that
  closes the one that has waited longest (``503``) if it has waited :data:`EVICT_AFTER_S`, so a
  flood of silent sockets cannot lock newcomers out; the flood's oldest sockets go first;
- a connection beyond what the open-file limit leaves room for (:func:`connection_cap`) gets
  ``503`` at once, counted in a WARNING, instead of libuv's silent close at the limit itself.

And an answer with a ``Content-Length`` leaves in one write, head and body together
(:class:`OneWrite`), where uvicorn writes the head and the body apart: one TCP segment per poll
answer, not two (Node's http does the same).

Every refusal is written with ``connection: close`` and a one-line reason, the socket is closed
once the client has read it (a lingering close, at most :data:`LINGER_S`), and it is logged at
INFO (no traceback). Idle keep-alive connections between requests are
uvicorn's ``timeout_keep_alive`` (``http_idle_timeout_s``).

All code touching uvicorn's protocol internals is in this module;
``tests/servers/test_http_limits.py`` pins the uvicorn version it was written against and
``tests/servers/test_fastpath_pins.py`` the internals it uses.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any, ClassVar, cast

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from feed.settings import Settings
from servers.fastpath.ws_protocol import Flag

# websockets (the upgrade path) refuses request lines and header lines over 8,192 bytes; below
# that, with room for the method, "HTTP/1.1" and the ": " separator, the answer is ours.
MAX_TARGET_BYTES = 8_000
MAX_LINE_BYTES = 8_000
UVICORN_VERSION = "0.54.0"
LINGER_S = 2.0
# A pending connection is evicted for a newcomer only once it has waited this long.
EVICT_AFTER_S = 1.0
# Descriptors kept for everything but client sockets (listeners, logs, Redis, the snapshot, the
# event loop's own) when the open-file limit caps connections.
FD_RESERVE = 32

_LOGGER = logging.getLogger("pushlab.http")


class Refusal(Exception):
    """A request head that gets an error answer: raised from a parser callback to stop llhttp."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Tally:
    """A count of refusals, logged as one WARNING a second at most: a flood must not flood the
    log, and the count says how big it was."""

    __slots__ = ("message", "count", "last")

    def __init__(self, message: str) -> None:
        self.message = message
        self.count = 0
        self.last = float("-inf")

    def add(self, cap: int) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= 1.0:
            self.last = now
            _LOGGER.warning(self.message, cap, self.count)


def connection_cap(reserve: int = FD_RESERVE) -> int:
    """Connections the open-file limit leaves room for (``RLIMIT_NOFILE`` soft, less a reserve).

    At the limit itself libuv (uvloop) accepts and closes new connections silently, to keep its
    listener from spinning on EMFILE: no answer, no log. Below it they get a 503 and a count.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    return max(1, soft - reserve)


class Pipeline(list[Any]):
    """What uvicorn's protocol needs of its pipelined-request deque: ``appendleft``, ``pop``,
    truth. An empty deque is ~0.6 KiB that every open connection keeps (an idle SSE stream for
    its whole life, experiments/idle_memory.py); pipelining is rare and shallow, so a list's
    insert at the front costs nothing. Pinned by tests/servers/test_fastpath_pins.py."""

    __slots__ = ()

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One per connection; the limits and the server's pending table are class attributes set by
    :func:`http_protocol` (one subclass per server)."""

    header_timeout_s: ClassVar[float]
    max_head_bytes: ClassVar[int]
    max_headers: ClassVar[int]
    max_pending: ClassVar[int]
    max_connections: ClassVar[int]
    # Connections waiting for a head -> since when, oldest first (dicts keep insertion order).
    pending: ClassVar[dict[GuardedHttpToolsProtocol, float]]
    evicted: ClassVar[Tally]
    over_fd_limit: ClassVar[Tally]

    # Slots, not instance-dict entries: uvicorn's protocol already fills its __dict__, and six
    # more keys made it resize (+1.3 KiB per idle SSE stream, experiments.idle_memory).
    __slots__ = ("_timer", "_in_head", "_head_bytes", "_head_size", "_header_count", "_refused")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pipeline = Pipeline()  # type: ignore[assignment]
        # The head's deadline; after a refusal, the end of the lingering close.
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = True
        # Bytes received since the head began (an unfinished line included), and bytes of the
        # head parsed so far (target and complete header lines).
        self._head_bytes = 0
        self._head_size = 0
        self._header_count = 0
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn's FlowControl waits on an asyncio.Event, which allocates a deque (~0.7 KiB per
        # connection, experiments/idle_memory.py sse); Flag is the same set/clear/wait without
        # one. Pinned by tests/servers/test_fastpath_pins.py.
        self.flow._is_writable_event = Flag()  # type: ignore[assignment]
        # uvicorn's set holds every open connection (HTTP, and WebSocket after the upgrade).
        if len(self.connections) > self.max_connections and self._over_fd_limit():
            self.over_fd_limit.add(self.max_connections)
            # Closed at once, not lingering: the point is to give the descriptor back.
            self.refuse(503, "server at its connection limit", linger=False)
            return
        # A silent connection is waiting for its head from the first moment.
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            if self._timer is None:
                self._await_head()
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, Refusal):
                self.refuse(cause.status, cause.reason)
            else:
                self.refuse(400, f"malformed request head: {exc}")
            return
        if self._in_head and self._head_bytes > self.max_head_bytes:
            self.refuse(431, f"request head over {self.max_head_bytes} bytes")

    # Parser callbacks (llhttp calls them while feed_data runs).
    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_size += len(url)
        if len(self.url) > MAX_TARGET_BYTES:
            raise Refusal(414, f"request target over {MAX_TARGET_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > MAX_LINE_BYTES:
            raise Refusal(431, f"header line over {MAX_LINE_BYTES} bytes")
        self._header_count += 1
        if self._header_count > self.max_headers:
            raise Refusal(431, f"more than {self.max_headers} headers")
        # A whole head can arrive in one read and complete before data_received's check.
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self.max_head_bytes:
            raise Refusal(431, f"request head over {self.max_head_bytes} bytes")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_done()
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # A new request's cycle (not an upgrade's, which keeps the old one), and not HEAD: its
        # answer has a head and no body write, so a held head would never go out.
        if cycle is not None and cycle is not before and self.scope["method"] != "HEAD":
            cycle.transport = cast(asyncio.Transport, OneWrite(cycle, self.transport))

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # The next head (keep-alive) is timed from its first byte: until then the connection is
        # idle, which is uvicorn's timeout_keep_alive once the response is out.
        self._in_head = True
        self._head_bytes = self._head_size = self._header_count = 0

    def _over_fd_limit(self) -> bool:
        # Read again when the cached cap is reached: the limit may have been raised since
        # (raise_nofile in a process that built its server first).
        cls = type(self)
        cls.max_connections = connection_cap()
        return len(self.connections) > cls.max_connections

    # The head's deadline and the pending table.
    def _await_head(self) -> None:
        pending = self.pending
        now = self.loop.time()
        if len(pending) >= self.max_pending:
            oldest, since = next(iter(pending.items()))
            # Only one that has had its chance: the event loop accepts a whole burst (up to
            # the listen backlog) before it reads any of it, and a burst is not a flood.
            if now - since >= EVICT_AFTER_S:
                oldest.refuse(503, "too many connections waiting to send a request head")
                self.evicted.add(self.max_pending)
        pending[self] = now
        self._timer = self.loop.call_later(self.header_timeout_s, self._head_timeout)

    def _head_done(self) -> None:
        self._in_head = False
        self.pending.pop(self, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timeout(self) -> None:
        self._timer = None
        self.refuse(408, f"request head not received within {self.header_timeout_s:g} s")

    def refuse(self, status: int, reason: str, linger: bool = True) -> None:
        """Answer ``status`` with ``reason`` and ``connection: close``, then close."""
        self._head_done()
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        _LOGGER.info("refused request head from %s: %d %s", client, status, reason)
        if self.cycle is not None and not self.cycle.response_complete:
            # A response is being written (the head is a pipelined one behind it): an answer
            # would land inside that response, so the connection just closes.
            self.transport.close()
            return
        body = reason.encode("ascii", "replace")
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(head))
        # Lingering close (nginx's lingering_close): closing with unread input makes the kernel
        # send RST, and an RST can destroy the answer before the client reads it (it is still
        # sending its head). So: FIN after the answer, discard input until the client closes
        # too (uvicorn then closes on eof_received), at most LINGER_S.
        if linger and self.transport.can_write_eof():
            self.transport.write_eof()
            self._timer = self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self.refuse(400, msg)


class OneWrite:
    """A request cycle's transport until its response's first write, so that an answer with a
    ``Content-Length`` goes out as one write: one ``send`` and one TCP segment, not two.

    uvicorn writes the status line and headers when the app sends ``http.response.start`` and the
    body on ``http.response.body``: two writes, and with ``TCP_NODELAY`` two segments, two
    wake-ups of the reader and two system calls per poll answer (Node's http corks a response
    into one). Here a head naming a ``Content-Length`` waits for the body's first write and goes
    out with it; any other first write (a streaming head, ``100 Continue``) goes out at once. The
    cycle then gets its own transport back, so everything after (SSE chunks, the direct writers
    of servers/fastpath) sees uvicorn's transport itself. Not installed for ``HEAD`` (no body
    write follows its head).
    """

    __slots__ = ("_cycle", "_transport", "_head")

    def __init__(self, cycle: Any, transport: asyncio.Transport) -> None:
        self._cycle, self._transport = cycle, transport
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        # uvicorn lowercases header names, and a value cannot hold CR or LF.
        if self._head is None and b"\r\ncontent-length:" in data:
            self._head = data
            return
        self._release(data)

    def close(self) -> None:
        # The app failed after its response started: uvicorn closes the connection; what was
        # written goes first, as it would have without the hold.
        self._release(b"")
        self._transport.close()

    def _release(self, data: bytes) -> None:
        self._cycle.transport = self._transport
        head, self._head = self._head, None
        if head is not None or data:
            self._transport.write(head + data if head is not None else data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def http_protocol(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn's ``http`` option: the limits of ``settings`` and a pending
    table of its own (one class per server, so two servers in one process never share it)."""
    attrs: dict[str, Any] = {
        "header_timeout_s": settings.http_header_timeout_s,
        "max_head_bytes": settings.http_max_head_bytes,
        "max_headers": settings.http_max_headers,
        "max_pending": settings.http_max_pending,
        "max_connections": connection_cap(),
        "pending": {},
        "evicted": Tally("pending request heads at the cap (%d): %d connections closed so far"),
        "over_fd_limit": Tally(
            "connections at the open-file limit (%d): %d new connections refused so far"
        ),
        "__module__": __name__,
    }
    return type("PushlabHttpProtocol", (GuardedHttpToolsProtocol,), attrs)
