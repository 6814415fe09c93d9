"""A lean SSE wire for load generation: HTTP/1.1 on an asyncio stream, parsed in bulk.

The default :class:`clients.sse.SSEClient` rides on httpx + httpx-sse, as a user's code would.
In a perf run a process of such clients used 2.7x the CPU of one of WebSocket clients for the
same events (docs/performance.md, lever 17: httpcore's per-read cancel scopes, h11's chunk
events, line-by-line decoding), so on a 2-core machine the generator, not the server, set SSE's
tail latency. ``SSEClient(wire="stream")`` uses this module instead: one GET, then the core's
chunked decoder and SSE parser (:mod:`feed.wire`) over whole reads. :func:`body_reads` is the
HTTP part alone, which the NDJSON client (:mod:`clients.stream`) reads too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncGenerator, Callable
from typing import Any
from urllib.parse import urlsplit

from feed.exceptions import FatalTransportError
from feed.wire.http1 import (
    END_OF_HEAD,
    MAX_HEAD,
    ChunkedDecoder,
    parse_response_head,
    sse_request_for,
)
from feed.wire.sse import Message, SSEParser

Request = Callable[[str, dict[str, str], dict[str, str]], bytes]

RETRYABLE_4XX = (408, 425, 429)


async def stream_messages(
    url: str,
    params: dict[str, str],
    headers: dict[str, str],
    read_timeout_s: float,
    ssl_context: ssl.SSLContext | None,
    on_socket: Callable[[Any], None] | None = None,
) -> AsyncGenerator[Message, None]:
    """Messages of one ``/sse`` response; raises on HTTP errors and on silence > timeout."""
    parser = SSEParser()
    headers = {"User-Agent": "pushlab-sse-stream", **headers}
    reads = body_reads(
        sse_request_for, url, params, headers, read_timeout_s, ssl_context, on_socket
    )
    async with contextlib.aclosing(reads):
        async for data in reads:
            for message in parser.feed(data):
                yield message


async def body_reads(
    request: Request,
    url: str,
    params: dict[str, str],
    headers: dict[str, str],
    read_timeout_s: float,
    ssl_context: ssl.SSLContext | None,
    on_socket: Callable[[Any], None] | None = None,
) -> AsyncGenerator[bytes, None]:
    """The body of one streamed GET, de-chunked, read by read; raises on HTTP errors (4xx other
    than 408/425/429 fatal), on silence > ``read_timeout_s`` and when the body ends."""
    split = urlsplit(url)
    port = split.port or (443 if split.scheme == "https" else 80)
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(
            split.hostname, port, ssl=ssl_context, limit=MAX_HEAD
        )
    try:
        if on_socket is not None:
            on_socket(writer.get_extra_info("socket"))
        writer.write(request(url, params, headers))
        async with asyncio.timeout(read_timeout_s):
            head = parse_response_head(await reader.readuntil(END_OF_HEAD))
        if head.status != 200:
            async with asyncio.timeout(read_timeout_s):
                body = await reader.read(500)
            text = f"HTTP {head.status}: {body.decode(errors='replace')}"
            if 400 <= head.status < 500 and head.status not in RETRYABLE_4XX:
                raise FatalTransportError(text, status=head.status)
            raise ConnectionError(text)
        chunked = head.headers.get("transfer-encoding", "").lower() == "chunked"
        decoder = ChunkedDecoder() if chunked else None
        silence = _Silence(read_timeout_s, writer.transport)
        try:
            while True:
                data = await reader.read(65536)
                silence.heard()
                if silence.expired:
                    raise TimeoutError(f"no data for {read_timeout_s:g} s")
                if not data:
                    raise EOFError("server closed the stream")
                if decoder is not None:
                    data = decoder.feed(data)
                if data:
                    yield data
                if decoder is not None and decoder.done:
                    raise EOFError("server ended the stream")
        finally:
            silence.cancel()
    finally:
        writer.close()
        try:
            # A TLS close takes round trips (close_notify): waited for, briefly, so the socket is
            # not left to a loop that may be about to end (a ResourceWarning, an open fd).
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            pass
        finally:
            writer.transport.abort()  # nothing more to say: whatever is left goes now


class _Silence:
    """Aborts the connection after ``timeout_s`` without data; one timer, not one per read.

    A read only stores the time; the timer wakes every ``timeout_s / 2`` and checks it, so a
    dead peer is noticed within 1.5 x ``timeout_s`` at no per-read cost (moving an
    ``asyncio.timeout`` deadline per read was ~7% of a generator's CPU).
    """

    def __init__(self, timeout_s: float, transport: asyncio.WriteTransport) -> None:
        self.timeout_s = timeout_s
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.last = self.loop.time()
        self.expired = False
        self._timer = self.loop.call_later(timeout_s / 2, self._check)

    def heard(self) -> None:
        self.last = self.loop.time()

    def _check(self) -> None:
        if self.loop.time() - self.last > self.timeout_s:
            self.expired = True
            self.transport.abort()  # the pending read returns b"" (or raises)
            return
        self._timer = self.loop.call_later(self.timeout_s / 2, self._check)

    def cancel(self) -> None:
        self._timer.cancel()
