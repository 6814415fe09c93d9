"""pushlab's own SSE response (``sse_impl = "pushlab"``): one task per stream, nothing else.

sse-starlette runs an anyio task group per stream (the stream, a ping loop, a disconnect
listener) plus the body generator: ~38 KiB Python-tracked per idle stream, against ~13 KiB here
(``python -m experiments.idle_memory sse 1000``, docs/performance.md). Here the ASGI task uvicorn
already runs for the request does everything:

- it starts the response and writes ``retry:`` and the preamble;
- it parks in ``receive()`` (which is how a disconnect is noticed at once) with the
  subscription's direct sink attached (:mod:`servers.fastpath.sse_direct`), so live events are
  written by the publisher and the task sleeps;
- the subscription's waker (:meth:`feed.broker.Subscription.park`) sets uvicorn's
  ``message_event``, so ``receive()`` also returns when the stream has something to send that
  did not go direct (a slow reader's backlog, the close) — the task then writes it through
  ``send`` under the app's send watchdog, exactly as the sse-starlette path does;
- keep-alive comments come from one app-wide timer (:class:`servers.timers.keepalive.KeepAlive`),
  not a task per stream.

This relies on uvicorn's HTTP/1.1 cycle (its ``message_event`` and transport), so the SSE
endpoint only takes this path when :func:`servers.fastpath.sse_direct.uvicorn_cycle` recognises
the server's ``send``; any other server gets the sse-starlette response.

The same response serves the NDJSON stream (``/stream``, :mod:`servers.stream`): what differs
between the two is a :class:`Framing` (headers, preamble, event bytes, keep-alive, goodbye).
``/stream`` has no second implementation, so on a server that is not uvicorn's HTTP/1.1 it runs
here too, parked on a second task that waits for the disconnect (:class:`_Parked`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from feed.broker import Subscription
from feed.codec import control, dumps
from feed.events import EncodedEvent
from feed.exceptions import SubscriptionClosed
from feed.frames import sse_chunk
from feed.wire.contract import TOKEN_EXPIRED
from feed.wire.http1 import LAST_CHUNK, encode_chunk
from feed.wire.sse import comment, named_block, retry_block
from servers.fastpath import sse_direct
from servers.fastpath.rawsend import transport_of
from servers.timers.release import release

if TYPE_CHECKING:
    from starlette.types import Receive, Send

    from feed.settings import Settings
    from servers.auth import Principal
    from servers.connections import Conn
    from servers.state import AppState

# What sse-starlette's EventSourceResponse sends, in the same order.
HEADERS = [
    (b"cache-control", b"no-store"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
    (b"content-type", b"text/event-stream; charset=utf-8"),
]
PING = comment(b"ping")
TRANSPORT = "sse"
SEND_TIMEOUT = "send_timeout"


def sse_opening(sub: Subscription, cfg: Settings) -> bytes:
    """``retry:``, then the preamble."""
    return retry_block(cfg.sse_retry_ms) + preamble(sub)


def sse_batch(batch: list[EncodedEvent]) -> bytes:
    return b"".join(e.sse for e in batch)


def sse_size(event: EncodedEvent) -> int:
    return len(event.sse)


def sse_end(reason: str) -> bytes:
    return named_block("end", control("end", reason=reason))


@dataclass(frozen=True, slots=True)
class Framing:
    """What one kind of HTTP stream writes; the response around it is the same for every kind."""

    transport: str
    headers: list[tuple[bytes, bytes]]
    opening: Callable[[Subscription, Settings], bytes]  # first write: gap, ready (and retry)
    batch: Callable[[list[EncodedEvent]], bytes]  # buffered events, one write
    size: Callable[[EncodedEvent], int]  # an event's bytes in the body, for the counters
    chunk: Callable[[EncodedEvent], bytes]  # an event as one HTTP/1.1 chunk (direct delivery)
    ping: bytes  # the keep-alive
    end: Callable[[str], bytes]  # the goodbye with its reason
    # Built once and shared: every open stream holds a reference (memory per idle stream).
    ping_chunk: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ping_chunk", encode_chunk(self.ping))


SSE = Framing(TRANSPORT, HEADERS, sse_opening, sse_batch, sse_size, sse_chunk, PING, sse_end)


@dataclass(frozen=True, slots=True)
class Admitted:
    """What the checks before the response found; all a stream needs from the request."""

    st: AppState
    client: tuple[str, int] | None
    topic: str
    cursor: int | None
    principal: Principal | None


class Stream:
    """The state :class:`servers.timers.keepalive.KeepAlive` needs about one stream."""

    __slots__ = ("cycle", "direct", "parked", "ping_chunk", "ping_due", "wake")

    def __init__(
        self, cycle: Any, wake: Callable[[], None], ping_chunk: bytes, *, direct: bool
    ) -> None:
        self.cycle = cycle
        self.direct = direct
        self.parked = False
        self.ping_due = False
        self.ping_chunk = ping_chunk
        self.wake = wake

    def keepalive(self) -> None:
        """Write a keep-alive now if the stream is parked and writable, else have its task send
        it."""
        if self.parked and self.direct and sse_direct.write(self.cycle, self.ping_chunk):
            return
        self.ping_due = True
        self.wake()


def preamble(sub: Subscription) -> bytes:
    """``event: gap`` when the cursor was not honoured, then ``event: ready`` with the cursor."""
    gap = named_block("gap", dumps(sub.gap.as_dict())) if sub.gap else b""
    ready = named_block("ready", control("ready", topic=sub.topic, cursor=sub.cursor), sub.cursor)
    return gap + ready


def body(chunk: bytes) -> dict[str, Any]:
    return {"type": "http.response.body", "body": chunk, "more_body": True}


class _Parked:
    """Waiting on a server that is not uvicorn's cycle: ``receive()`` runs in a task of its own
    (kept across waits, so no message is lost) and the subscription's waker sets an event."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.event = asyncio.Event()
        self.pending: asyncio.Future[Any] | None = None

    async def wait(self) -> dict[str, Any] | None:
        """The next ASGI message, or None when woken for something to send."""
        if self.pending is None:
            self.pending = asyncio.ensure_future(self.receive())
        woken = asyncio.ensure_future(self.event.wait())
        try:
            await asyncio.wait((self.pending, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
        self.event.clear()
        if not self.pending.done():
            return None
        message, self.pending = self.pending.result(), None
        return dict(message)

    def cancel(self) -> None:
        if self.pending is not None:
            self.pending.cancel()


async def serve(
    a: Admitted, cycle: Any | None, receive: Receive, send: Send, framing: Framing = SSE
) -> None:
    """Serve one admitted stream until it ends: on uvicorn's ``cycle`` (one task), or on any
    server with ``cycle=None`` (a second task waits for the disconnect)."""
    st, cfg = a.st, a.st.settings
    # Registered and subscribed before the response starts: a lost per-IP race or the topic
    # limit is still an HTTP answer here. One coroutine frame for the whole stream (each frame
    # kept alive by an idle stream is memory per connection).
    with st.conns.open(framing.transport, a.client) as conn:
        conn.user = a.principal.user if a.principal else None
        async with st.broker.subscribe(a.topic, a.cursor, cfg.subscriber_buffer) as sub:
            expiry = None
            if a.principal is not None:
                expiry = asyncio.get_running_loop().call_later(
                    max(0.0, a.principal.remaining()), sub.close, TOKEN_EXPIRED
                )
            await send({"type": "http.response.start", "status": 200, "headers": framing.headers})
            raw_send = cycle.send if cycle is not None else send
            parked = _Parked(receive) if cycle is None else None
            stream: Stream | None = None
            try:
                with st.watchdog:
                    await raw_send(body(framing.opening(sub, cfg)))
                sink = None
                if cfg.sse_direct and cycle is not None:
                    sink = sse_direct.make_sink(raw_send, conn, framing.chunk, framing.size)
                sub.attach(sink, sink.run if sink is not None else None)
                wake = sse_direct.waker(cycle) if parked is None else parked.event.set
                stream = Stream(cycle, wake, framing.ping_chunk, direct=sink is not None)
                st.sse_keepalive.add(stream)
                try:
                    while True:
                        if stream.ping_due:
                            stream.ping_due = False
                            with st.watchdog:
                                await raw_send(body(framing.ping))
                        if sub.pending or sub.closed_reason is not None:
                            # Does not suspend: there is a batch, or the close to raise.
                            batch = await sub.next_batch()
                            chunk = framing.batch(batch)
                            conn.events += len(batch)
                            conn.bytes += len(chunk)
                            with st.watchdog:
                                await raw_send(body(chunk))
                            continue
                        if stream.ping_due or not sub.park(stream.wake):
                            continue
                        stream.parked = True
                        try:
                            if parked is None:
                                message: Any = await receive()
                            else:
                                message = await parked.wait()
                        finally:
                            stream.parked = False
                            sub.unpark()
                        if message is not None and message["type"] == "http.disconnect":
                            return
                except SubscriptionClosed as closed:
                    conn.closing(None, closed.reason)
                    with st.watchdog:
                        await raw_send(body(framing.end(closed.reason)))
                with st.watchdog:
                    await raw_send({"type": "http.response.body", "body": b"", "more_body": False})
            except TimeoutError:
                # The send watchdog: the client stopped reading. The goodbye gets a bounded
                # chance, the socket is released (as a stalled WebSocket's is), and the task
                # waits for uvicorn to see the connection go, so the response does not end
                # "incomplete".
                await send_timed_out(st, [conn], transport_of(raw_send), receive, framing)
            finally:
                if parked is not None:
                    parked.cancel()
                conn.closing(None, "client_gone")
                if stream is not None:
                    st.sse_keepalive.discard(stream)
                sub.attach(None)
                if expiry is not None:
                    expiry.cancel()


async def send_timed_out(
    st: AppState, conn: list[Conn], transport: Any | None, receive: Receive, framing: Framing = SSE
) -> None:
    """A stream whose client stopped reading: ``event: end`` (reason ``send_timeout``) for a
    client that starts reading again within ``send_close_timeout_s``, then the socket closed or
    reset (:mod:`servers.timers.release`), and uvicorn's disconnect awaited (else it logs the
    response as incomplete). Both implementations end this way."""
    for c in conn:
        c.closing(None, SEND_TIMEOUT)
    st.metrics.errors.labels(framing.transport, SEND_TIMEOUT).inc()
    if transport is None:  # not uvicorn's cycle: nothing to release but the task
        return
    if not transport.is_closing():
        # Straight into the transport's buffer: send() would wait for flow control, which
        # waits for the client. uvicorn writes whole chunks, so this starts a new one.
        transport.write(encode_chunk(framing.end(SEND_TIMEOUT)) + LAST_CHUNK)
    await release(transport, st.settings.send_close_timeout_s)
    while (await receive())["type"] != "http.disconnect":
        pass
