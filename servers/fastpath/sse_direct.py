"""Direct SSE and NDJSON delivery: the publisher writes an event's chunk to a parked stream's
socket itself.

uvicorn hands the app ``send`` = the bound ``send`` of its HTTP/1.1 ``RequestResponseCycle``
(:mod:`servers.fastpath.rawsend` keeps it in the scope). Once the response has started with chunked
transfer encoding, a body chunk is nothing but ``transport.write(b"<len>\\r\\n<body>\\r\\n")``, so
:meth:`feed.broker.Subscription.attach` can be given a sink that does exactly that from the
publish loop, instead of waking the stream's task once per event.

The sink declines (returns False; the event then takes the stream task's buffered path, with its
overflow bound and send timeout) whenever that shortcut could differ from ``send``: the response
is complete or the client gone, uvicorn's flow control has paused writing, the transport is
closing, or its write buffer is not empty (a slow reader: the kernel did not take the last write).
Anything but uvicorn's own cycle (another server, a middleware wrapping ``send``, a non-chunked
response such as HEAD) gets no sink at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from feed.events import EncodedEvent
from feed.frames import sse_chunk
from servers.connections import Conn


def _cycle_classes() -> tuple[type, ...]:
    classes: list[type] = []
    try:
        from uvicorn.protocols.http.httptools_impl import RequestResponseCycle as HttpTools

        classes.append(HttpTools)
    except ImportError:  # httptools not installed
        pass
    try:
        from uvicorn.protocols.http.h11_impl import RequestResponseCycle as H11

        classes.append(H11)
    except ImportError:  # h11 not installed
        pass
    return tuple(classes)


CYCLES = _cycle_classes()


def uvicorn_cycle(send: object) -> Any | None:
    """The uvicorn ``RequestResponseCycle`` whose ``send`` this is, or None."""
    owner = getattr(send, "__self__", None)
    if owner is None or type(owner) not in CYCLES or getattr(send, "__name__", "") != "send":
        return None
    return owner


def waker(cycle: Any) -> Callable[[], None]:
    """Makes the cycle's pending ``receive()`` return (uvicorn's ``message_event``), so a parked
    stream task wakes up to send what did not go direct."""
    wake: Callable[[], None] = cycle.message_event.set
    return wake


def chunked(cycle: Any) -> bool:
    """True once the cycle's response has started with chunked transfer encoding."""
    if not cycle.response_started or cycle.response_complete:
        return False
    encoding = getattr(cycle, "chunked_encoding", None)  # httptools
    if encoding is not None:
        return encoding is True
    # h11 keeps the framing in its writer; only its chunked writer frames data as we would.
    writer = getattr(getattr(cycle, "conn", None), "_writer", None)
    return type(writer).__name__ == "ChunkedWriter"


def write(cycle: Any, chunk: bytes) -> bool:
    """Write one already-framed chunk if it goes out exactly as ``send`` would write it, with
    nothing queued ahead of it in uvicorn or the transport; else False. Never raises."""
    try:
        transport = cycle.transport
        if (
            cycle.disconnected
            or cycle.response_complete
            or cycle.flow.write_paused
            or transport.is_closing()
            or transport.get_write_buffer_size()
        ):
            return False
        transport.write(chunk)
    except Exception:  # a transport in a state we did not foresee: the buffered path decides
        return False
    return True


class ChunkSink:
    """Direct delivery to one started chunked response (:meth:`feed.broker.Subscription.attach`):
    called with one event, or :meth:`run` with several joined into one write."""

    __slots__ = ("cycle", "conn", "chunk_of", "size_of")

    def __init__(
        self,
        cycle: Any,
        conn: Conn,
        chunk_of: Callable[[EncodedEvent], bytes],
        size_of: Callable[[EncodedEvent], int],
    ) -> None:
        self.cycle, self.conn, self.chunk_of, self.size_of = cycle, conn, chunk_of, size_of

    def __call__(self, event: EncodedEvent) -> bool:
        if not write(self.cycle, self.chunk_of(event)):
            return False
        conn = self.conn
        conn.events += 1
        conn.bytes += self.size_of(event)
        conn.direct_events += 1
        return True

    def run(self, events: Sequence[EncodedEvent]) -> bool:
        # Chunks back to back are one valid chunked body: one write, one syscall, for the run.
        chunk_of = self.chunk_of
        if not write(self.cycle, b"".join([chunk_of(e) for e in events])):
            return False
        conn, size_of = self.conn, self.size_of
        conn.events += len(events)
        conn.bytes += sum(size_of(e) for e in events)
        conn.direct_events += len(events)
        return True


def make_sink(
    send: object,
    conn: Conn,
    chunk_of: Callable[[EncodedEvent], bytes] = sse_chunk,
    size_of: Callable[[EncodedEvent], int] = lambda event: len(event.sse),
) -> ChunkSink | None:
    """A sink for :meth:`feed.broker.Subscription.attach`, or None when ``send`` is not a
    recognised uvicorn cycle whose chunked response has started. ``chunk_of`` is the event as
    one chunk of this stream (SSE by default; ``/stream`` writes NDJSON lines), ``size_of`` its
    body bytes."""
    cycle = uvicorn_cycle(send)
    if cycle is None or not chunked(cycle):
        return None
    return ChunkSink(cycle, conn, chunk_of, size_of)
