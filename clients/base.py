"""The client interface shared by every transport.

A client is an async iterator of :class:`Received` events (and :class:`~feed.events.Gap`
signals). It reconnects with backoff, resumes after ``last_seq``, drops duplicates and counts
what happened. Subclasses implement :meth:`FeedClient._session`: one connection's worth of raw
items, ending or raising when that connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

from clients.retry import RetryPolicy, is_retryable
from feed.events import FeedEvent, Gap

if TYPE_CHECKING:
    import httpx


class Cuttable(Protocol):
    """A socket, or asyncio's ``TransportSocket`` wrapper around one."""

    def shutdown(self, how: int, /) -> None: ...


@dataclass(frozen=True, slots=True)
class Received:
    """A delivered event; ``recv_ns`` is ``time.time_ns()`` on arrival, ``nbytes`` its JSON size."""

    event: FeedEvent
    recv_ns: int
    nbytes: int

    @property
    def latency_ms(self) -> float:
        """End-to-end latency against the server's publish stamp (same host clocks)."""
        return (self.recv_ns - self.event.ts_ns) / 1e6


@dataclass(frozen=True, slots=True)
class Ready:
    """The server's statement of where this connection starts (after ``cursor``)."""

    cursor: int


@dataclass(slots=True)
class Counters:
    """What a client saw; ``silent_gaps`` counts seq jumps the server did not announce (a bug)."""

    events: int = 0
    duplicates: int = 0
    reconnects: int = 0
    gaps: int = 0
    silent_gaps: int = 0
    bytes: int = 0
    requests: int = 0
    connections: int = 0
    empty_responses: int = 0
    errors: list[str] = field(default_factory=list)


RawItem = tuple[FeedEvent, int] | Gap | Ready


Item = Received | Gap


def tls_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    """The TLS context for ``verify``: the given context, the default one, or no checks."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


class FeedClient(ABC):
    """Subscribe to one topic over one transport; iterate :meth:`events`."""

    transport: ClassVar[str]

    def __init__(
        self,
        url: str,
        topic: str,
        *,
        since: int | None = None,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        verify: ssl.SSLContext | bool = True,
        http2: bool = False,
        http3: bool = False,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        # HTTP/2 (ALPN h2 over https://): httpx's HTTP/2 for the HTTP transports, RFC 8441 for
        # the WebSocket (clients/h2ws.py). HTTP/3 (QUIC to the URL's port on UDP): the HTTP
        # transports only, through clients/h3http.py.
        self.http2 = http2
        self.http3 = http3
        # An httpx client shared with other feed clients (the HTTP transports): over HTTP/2 their
        # requests are streams of one connection. Not closed here; its owner closes it.
        self.http = http
        # A JWT (docs/protocol.md, "Authentication"); each transport sends it its own way.
        self.token = token
        self.topic = topic
        self.last_seq = since
        self.retry = retry or RetryPolicy()
        self.headers = dict(headers or {})
        # TLS verification for https/wss URLs: an SSLContext trusting e.g. a local CA, or a bool.
        self.verify = verify
        self.counters = Counters()
        self.gaps: list[Gap] = []
        self.server_retry_s: float | None = None
        self._sock: Cuttable | None = None

    def auth_headers(self) -> dict[str, str]:
        """``headers`` plus ``Authorization: Bearer`` when a token is set."""
        if self.token is None:
            return self.headers
        return self.headers | {"Authorization": f"Bearer {self.token}"}

    def _socket(self) -> Cuttable | None:
        """The socket of the current connection (subclasses may track it differently)."""
        return self._sock

    @abstractmethod
    def _session(self) -> AsyncGenerator[RawItem, None]:
        """Items from one connection (polling: one round of requests until an error)."""

    def drop(self) -> None:
        """Cut the current connection from the client side, as a network fault would."""
        sock = self._socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    async def events(self) -> AsyncGenerator[Item, None]:
        """Delivered events and gap signals, across reconnects, in seq order, never twice."""
        delays = self.retry.delays()
        while True:
            fresh = False
            try:
                # aclosing: when the caller stops early, the connection closes now, in this task.
                async with contextlib.aclosing(self._session()) as session:
                    async for raw in session:
                        item = self._accept(raw)
                        if item is not None:
                            if not fresh:
                                # A connection that delivers resets the backoff.
                                fresh, delays = True, self.retry.delays(self.server_retry_s)
                            yield item
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                self.counters.errors.append(type(exc).__name__)
            self.counters.reconnects += 1
            delay = next(delays, None)
            if delay is None:
                raise ConnectionError(
                    f"{self.transport}: gave up after {self.retry.max_attempts} attempts"
                )
            await asyncio.sleep(delay)

    def _accept(self, raw: RawItem) -> Item | None:
        if isinstance(raw, Ready):
            if self.last_seq is None:
                self.last_seq = raw.cursor
            return None
        if isinstance(raw, Gap):
            self.last_seq = raw.resume_after
            self.counters.gaps += 1
            self.gaps.append(raw)
            return raw
        event, nbytes = raw
        last = self.last_seq
        if last is not None and event.seq <= last:
            self.counters.duplicates += 1
            return None
        if last is not None and event.seq != last + 1:
            self.counters.silent_gaps += 1
        self.last_seq = event.seq
        self.counters.events += 1
        self.counters.bytes += nbytes
        return Received(event, time.time_ns(), nbytes)
