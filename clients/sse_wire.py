"""A lean SSE wire for load generation: HTTP/1.1 on an asyncio stream, parsed in bulk.

The default :class:`clients.sse.SSEClient` rides on httpx + httpx-sse, as a user's code would.
In a perf run a process of such clients used 2.7x the CPU of one of WebSocket clients for the
same events (docs/performance.md, lever 17: httpcore's per-read cancel scopes, h11's chunk
events, line-by-line decoding), so on a 2-core machine the generator, not the server, set SSE's
tail latency. ``SSEClient(wire="stream")`` uses this module instead: one GET, chunked
decoding and the SSE field grammar (WHATWG HTML §9.2.6) over whole reads.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from feed.exceptions import FatalTransportError

MAX_HEAD = 16 * 1024
MAX_LINE = 1 << 20
RETRYABLE_4XX = (408, 425, 429)


@dataclass(frozen=True, slots=True)
class Message:
    """One dispatched SSE message (``event`` defaults to ``message``)."""

    event: str
    data: bytes
    id: bytes | None
    retry: int | None


class SSEParser:
    """Incremental SSE parser: bytes in, dispatched messages out (CR, LF or CRLF line ends)."""

    def __init__(self) -> None:
        self._tail = b""
        self._event = b""
        self._data: list[bytes] = []
        self._id: bytes | None = None
        self._retry: int | None = None
        self._first = True

    def feed(self, chunk: bytes) -> list[Message]:
        """Parse ``chunk``; a line split across reads is kept until its end arrives."""
        buf = self._tail + chunk if self._tail else chunk
        if self._first and buf:
            self._first = False
            buf = buf.removeprefix(b"\xef\xbb\xbf")
        if b"\r" in buf:
            # A CR at the very end may be the first half of a CRLF: keep it for the next read.
            hold = buf.endswith(b"\r")
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if hold:
                buf = buf[:-1]
                lines = buf.split(b"\n")
                self._tail = lines.pop() + b"\r"
            else:
                lines = buf.split(b"\n")
                self._tail = lines.pop()
        else:
            lines = buf.split(b"\n")
            self._tail = lines.pop()
        if len(self._tail) > MAX_LINE:
            raise ValueError(f"SSE line longer than {MAX_LINE} bytes")
        out: list[Message] = []
        for line in lines:
            if not line:
                if self._data:
                    out.append(
                        Message(
                            self._event.decode() or "message",
                            b"\n".join(self._data),
                            self._id,
                            self._retry,
                        )
                    )
                self._event, self._data, self._retry = b"", [], None
                continue
            if line[0] == 0x3A:  # ":" comment (keep-alive)
                continue
            name, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value
            elif name == b"id":
                if b"\0" not in value:
                    self._id = value
            elif name == b"retry" and value.isdigit():
                self._retry = int(value)
        return out


class ChunkedDecoder:
    """HTTP/1.1 chunked transfer decoding (RFC 9112 §7.1), incremental; ``done`` at the end."""

    def __init__(self) -> None:
        self._buf = b""
        self._left = 0  # body bytes left in the current chunk, then its CRLF
        self._crlf = False
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """The body bytes contained in ``data`` (may be empty)."""
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        pos = 0
        n = len(buf)
        while pos < n and not self.done:
            if self._left:
                take = min(self._left, n - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self._left -= take
                if self._left:
                    break
                self._crlf = True
            if self._crlf:
                if n - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
                pos += 2
                self._crlf = False
            end = buf.find(b"\r\n", pos)
            if end < 0:
                if n - pos > 1024:
                    raise ValueError("chunk size line too long")
                break
            size_field = buf[pos:end].split(b";", 1)[0].strip()
            try:
                size = int(size_field, 16)
            except ValueError:
                raise ValueError(f"bad chunk size {size_field[:20]!r}") from None
            pos = end + 2
            if size == 0:
                self.done = True  # trailers, if any, are not read: the stream is over
                break
            self._left = size
        self._buf = buf[pos:] if not self.done else b""
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class Head:
    """Status and headers of the response."""

    status: int
    headers: dict[str, str]


def parse_head(raw: bytes) -> Head:
    """Status line and headers (names lower-cased; the last of repeated names wins)."""
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"bad status line {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"bad header line {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    return Head(int(parts[1]), headers)


def request_bytes(url: str, params: dict[str, str], headers: dict[str, str]) -> bytes:
    """The GET request for ``url`` + ``/sse`` with ``params`` and ``headers``."""
    split = urlsplit(url)
    host = split.netloc
    path = (split.path.rstrip("/") or "") + "/sse?" + urlencode(params)
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Accept: text/event-stream"]
    lines += ["Cache-Control: no-store", "User-Agent: pushlab-sse-stream"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def stream_messages(
    url: str,
    params: dict[str, str],
    headers: dict[str, str],
    read_timeout_s: float,
    ssl_context: ssl.SSLContext | None,
    on_socket: Callable[[Any], None] | None = None,
) -> AsyncGenerator[Message, None]:
    """Messages of one ``/sse`` response; raises on HTTP errors and on silence > timeout."""
    split = urlsplit(url)
    port = split.port or (443 if split.scheme == "https" else 80)
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(
            split.hostname, port, ssl=ssl_context, limit=MAX_HEAD
        )
    try:
        if on_socket is not None:
            on_socket(writer.get_extra_info("socket"))
        writer.write(request_bytes(url, params, headers))
        async with asyncio.timeout(read_timeout_s):
            head = parse_head(await reader.readuntil(b"\r\n\r\n"))
        if head.status != 200:
            async with asyncio.timeout(read_timeout_s):
                body = await reader.read(500)
            text = f"HTTP {head.status}: {body.decode(errors='replace')}"
            if 400 <= head.status < 500 and head.status not in RETRYABLE_4XX:
                raise FatalTransportError(text, status=head.status)
            raise ConnectionError(text)
        chunked = head.headers.get("transfer-encoding", "").lower() == "chunked"
        decoder = ChunkedDecoder() if chunked else None
        parser = SSEParser()
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
                for message in parser.feed(data):
                    yield message
                if decoder is not None and decoder.done:
                    raise EOFError("server ended the stream")
        finally:
            silence.cancel()
    finally:
        writer.close()


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
