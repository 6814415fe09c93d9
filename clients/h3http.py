"""httpx over HTTP/3: an ``httpx.AsyncBaseTransport`` on one QUIC connection (aioquic).

httpx speaks HTTP/1.1 and HTTP/2 only; this transport lets the same clients (short poll, long
poll, SSE, NDJSON stream) run unchanged over HTTP/3 (``http3=True``, ``make_http``). One QUIC
connection per transport (per ``httpx.AsyncClient``), opened on the first request and again
after it ends; each request is a bidirectional stream of it, so requests sharing a client are
multiplexed as over HTTP/2.

- **Verification** as :func:`clients._h3.connect` does it (aioquic takes no ``SSLContext``: the
  CA certificates loaded into one are its trust anchors).
- **Timeouts** are httpx's: ``connect`` bounds the QUIC handshake, ``read`` each wait for the
  response head or a body chunk (silence longer than that is an ``httpx.ReadTimeout``).
- **Closing a response early** (a long poll given up, an SSE stream left) sends STOP_SENDING
  and RESET_STREAM (H3_REQUEST_CANCELLED, RFC 9114 8.1), so the server learns the request is
  gone; the connection stays up for the next request.
- **Cut** (:meth:`FeedClient.drop`): the response's ``network_stream`` extension answers
  ``get_extra_info("socket")`` with an object whose ``shutdown()`` closes the UDP socket without
  a CONNECTION_CLOSE, as a lost path would; the pending read fails at once. The ``trace`` hook
  sees ``connection.connect_tcp.complete`` for each new QUIC connection, as httpcore reports a
  new TCP connection, so :class:`clients._http.SocketTracker` works unchanged.
- **Bytes.** :attr:`bytes_sent` / :attr:`bytes_received`: UDP payload (QUIC packets, so
  headers, QPACK, frames, ACKs and crypto are in), summed over this transport's connections.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.events import StreamReset

from clients._h3 import H3Client, connect
from feed.exceptions import TransportError

# RFC 9114 8.1: the client no longer wants the response.
H3_REQUEST_CANCELLED = 0x10C
# Hop-by-hop headers HTTP/3 forbids (RFC 9114 4.2); httpx adds some of them for HTTP/1.1.
_HOP = frozenset({b"host", b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te"})


# A stream's queue: its HTTP/3 events, the peer's reset of it, None when the connection ended.
_Item = H3Event | StreamReset | None


class _Cut:
    """What ``get_extra_info("socket")`` returns: ``shutdown`` drops the QUIC connection."""

    def __init__(self, conn: H3Client) -> None:
        self.conn = conn

    def shutdown(self, how: int, /) -> None:
        self.conn.abort()


class _NetworkStream:
    def __init__(self, conn: H3Client) -> None:
        self.cut = _Cut(conn)

    def get_extra_info(self, name: str) -> Any:
        return self.cut if name == "socket" else None


class _Connection:
    """One QUIC connection: its events routed to the stream (request) they belong to."""

    def __init__(self, client: H3Client) -> None:
        self.client = client
        self.streams: dict[int, asyncio.Queue[_Item]] = {}
        self.gone = False
        client.on_reset = self._reset
        self.pump = asyncio.get_running_loop().create_task(self._route())

    def _reset(self, event: StreamReset) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.put_nowait(event)

    async def _route(self) -> None:
        queue = self.client.queue
        while True:
            event = await queue.get()
            if event is None:
                break
            stream = self.streams.get(getattr(event, "stream_id", -1))
            if stream is not None:
                stream.put_nowait(event)
        self._end()

    def _end(self) -> None:
        """The connection is gone: every request still reading fails now."""
        if not self.gone:
            self.gone = True
            for stream in self.streams.values():
                stream.put_nowait(None)

    def open(self) -> tuple[int, asyncio.Queue[_Item]]:
        sid = self.client.new_stream()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.streams[sid] = queue
        return sid, queue

    def cancel(self, sid: int) -> None:
        """The response is not wanted any more: stop both directions of its stream."""
        if self.streams.pop(sid, None) is None or self.gone:
            return
        self.client.cancel_stream(sid, H3_REQUEST_CANCELLED)

    def finish(self, sid: int) -> None:
        self.streams.pop(sid, None)

    def close(self) -> None:
        self.client.shutdown()
        self.pump.cancel()
        self._end()


async def _next(queue: asyncio.Queue[_Item], timeout_s: float | None) -> H3Event:
    try:
        async with asyncio.timeout(timeout_s):
            event = await queue.get()
    except TimeoutError:
        raise httpx.ReadTimeout(f"HTTP/3: no data for {timeout_s} s") from None
    if event is None:
        raise httpx.ReadError("HTTP/3: the QUIC connection ended")
    if isinstance(event, StreamReset):
        raise httpx.ReadError(f"HTTP/3: the server reset the stream (0x{event.error_code:x})")
    return event


class _Body(httpx.AsyncByteStream):
    def __init__(
        self,
        conn: _Connection,
        sid: int,
        queue: asyncio.Queue[_Item],
        read_s: float | None,
        ended: bool,
    ) -> None:
        self.conn, self.sid, self.queue, self.read_s, self.ended = conn, sid, queue, read_s, ended

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while not self.ended:
            event = await _next(self.queue, self.read_s)
            if isinstance(event, DataReceived):
                self.ended = event.stream_ended
                if event.data:
                    yield event.data
            elif isinstance(event, HeadersReceived):  # trailers
                self.ended = event.stream_ended

    async def aclose(self) -> None:
        if self.ended:
            self.conn.finish(self.sid)
        else:
            self.ended = True
            self.conn.cancel(self.sid)


class H3Transport(httpx.AsyncBaseTransport):
    """httpx requests as HTTP/3 streams of one QUIC connection (reopened when it ends)."""

    def __init__(self, verify: ssl.SSLContext | bool = True) -> None:
        self.verify = verify
        self._conn: _Connection | None = None
        self._lock = asyncio.Lock()
        self._done_sent = self._done_received = 0

    @property
    def bytes_sent(self) -> int:
        live = self._conn.client.bytes_sent if self._conn is not None else 0
        return self._done_sent + live

    @property
    def bytes_received(self) -> int:
        live = self._conn.client.bytes_received if self._conn is not None else 0
        return self._done_received + live

    async def _connection(self, request: httpx.Request) -> _Connection:
        async with self._lock:
            conn = self._conn
            if conn is not None and (conn.gone or conn.client.udp.is_closing()):
                self._retire(conn)
                conn = None
            if conn is None:
                timeout = request.extensions.get("timeout", {}).get("connect")
                host, port = request.url.host, request.url.port or 443
                try:
                    client = await connect(
                        host, port, verify=self.verify, timeout_s=timeout or 10.0
                    )
                except TransportError as exc:
                    raise httpx.ConnectError(str(exc)) from None
                conn = self._conn = _Connection(client)
                trace = request.extensions.get("trace")
                if trace is not None:
                    info = {"return_value": _NetworkStream(client)}
                    await trace("connection.connect_tcp.complete", info)
            return conn

    def _retire(self, conn: _Connection) -> None:
        self._done_sent += conn.client.bytes_sent
        self._done_received += conn.client.bytes_received
        conn.close()
        if self._conn is conn:
            self._conn = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "https":
            raise httpx.UnsupportedProtocol("HTTP/3 needs https:// (QUIC is always TLS)")
        conn = await self._connection(request)
        body = await request.aread()
        url = request.url
        head = [
            (b":method", request.method.encode()),
            (b":scheme", b"https"),
            (b":authority", url.netloc),
            (b":path", url.raw_path),
        ]
        head += [(k.lower(), v) for k, v in request.headers.raw if k.lower() not in _HOP]
        sid, queue = conn.open()
        h3 = conn.client.h3
        try:
            h3.send_headers(sid, head, end_stream=not body)
            if body:
                h3.send_data(sid, body, end_stream=True)
            conn.client.transmit()
            read_s = request.extensions.get("timeout", {}).get("read")
            event = await _next(queue, read_s)
            while not isinstance(event, HeadersReceived):  # data before a head is malformed
                event = await _next(queue, read_s)
        except BaseException:
            conn.cancel(sid)
            raise
        status, headers = 0, []
        for k, v in event.headers:
            if k == b":status":
                status = int(v)
            elif not k.startswith(b":"):
                headers.append((k, v))
        return httpx.Response(
            status,
            headers=headers,
            stream=_Body(conn, sid, queue, read_s, event.stream_ended),
            extensions={"http_version": b"HTTP/3", "network_stream": _NetworkStream(conn.client)},
        )

    async def aclose(self) -> None:
        async with self._lock:
            if self._conn is not None:
                self._retire(self._conn)
