"""A WebSocket over one HTTP/2 stream (RFC 8441), on the ``h2`` library.

:class:`H2WebSocket` is sans-I/O: bytes in (:meth:`~H2WebSocket.receive_data`), bytes out
(:meth:`~H2WebSocket.data_to_send`), WebSocket frames (:mod:`feed.wire.ws`) inside HTTP/2 DATA
frames. It waits for the server's SETTINGS, refuses to go on unless they announce
``SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`` (RFC 8441 §3: a client MUST NOT send ``:protocol``
otherwise), then opens the stream with an extended CONNECT (``:protocol: websocket``); the answer
is ``:status 200``: no 101, no Sec-WebSocket-Key/Accept. :func:`connect` runs it on an asyncio
connection (TLS with ALPN ``h2``, or h2c by prior knowledge); :mod:`clients.websocket` uses that
with ``http2=True`` and ``pushlab explain h2`` drives the same class on a blocking socket.

Liveness as :mod:`websockets` gives it over HTTP/1.1: after ``ping_interval_s`` of silence the
client sends an HTTP/2 PING, and no bytes within ``ping_timeout_s`` more end the connection (a dead
server or path). Closing is bounded too: asyncio's TLS close can wait for a ``close_notify`` that
never comes (CPython issue 83939), so after ``close_timeout_s`` the socket is aborted.

Deliberate limits: one WebSocket per connection (the lab's clients open one per subscriber; the
streams-per-connection figure is measured with SSE) and no permessage-deflate.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.settings

from clients.retry import RETRYABLE_CLOSE_CODES, RETRYABLE_STATUS
from feed.exceptions import FatalTransportError
from feed.wire.ws import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    Decoded,
    FrameReader,
    client_frame,
    close_payload,
)

NO_EXTENDED_CONNECT = (
    "the server did not announce SETTINGS_ENABLE_CONNECT_PROTOCOL = 1: no WebSocket over this "
    "HTTP/2 connection (RFC 8441 §3); a browser would open an HTTP/1.1 connection instead"
)
READ_BYTES = 65536


class H2WebSocketError(ConnectionError):
    """No WebSocket: the server does not allow the extended CONNECT, answered 5xx/408/429, or the
    stream or connection ended; retryable like any dropped connection. (A 4xx that would repeat
    and a policy close are :class:`~feed.exceptions.FatalTransportError`, as over HTTP/1.1.)"""


def _refused(status: int | None) -> Exception:
    message = f"extended CONNECT answered {status}"
    if status is not None and 400 <= status < 500 and status not in RETRYABLE_STATUS:
        return FatalTransportError(message, status=status)
    return H2WebSocketError(message)


def _text(pairs: Any) -> list[tuple[str, str]]:
    return [(k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
            for k, v in pairs]  # fmt: skip


class H2WebSocket:
    """One RFC 8441 WebSocket on an HTTP/2 client connection, sans I/O."""

    def __init__(
        self,
        authority: str,
        path: str,
        *,
        scheme: str = "https",
        subprotocols: Sequence[str] = (),
        headers: dict[str, str] | None = None,
        insist: bool = False,
    ) -> None:
        # insist: send the extended CONNECT even when the server did not announce it (RFC 8441
        # §3 forbids that; the explainer does it once to record how a server answers).
        self.insist = insist
        config = h2.config.H2Configuration(client_side=True, validate_outbound_headers=not insist)
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        self.request_headers = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", scheme),
            (":path", path),
            (":authority", authority),
            ("sec-websocket-version", "13"),
        ]
        if subprotocols:
            self.request_headers.append(("sec-websocket-protocol", ", ".join(subprotocols)))
        self.request_headers += [(k.lower(), v) for k, v in (headers or {}).items()]
        self.stream_id: int | None = None
        self.enable_connect_protocol: int | None = None
        # The setting ids of the server's first SETTINGS frame (h2 fills in defaults for others).
        self.server_settings: list[int] = []
        self.response_headers: list[tuple[str, str]] = []
        self.ended = False
        # The server's close code (1005: a close without one); None until it closed.
        self.close_code: int | None = None
        self._reader = FrameReader()

    @property
    def status(self) -> int | None:
        """The answer's ``:status`` (None until it came)."""
        status = dict(self.response_headers).get(":status")
        return int(status) if status else None

    @property
    def open(self) -> bool:
        return self.status == 200 and not self.ended

    def data_to_send(self) -> bytes:
        return bytes(self.conn.data_to_send())

    def receive_data(self, data: bytes) -> list[Decoded]:
        """Feed bytes from the server; returns the WebSocket frames now complete.

        Answers pings with pongs and a close with a close (queued in :meth:`data_to_send`).
        Raises :class:`H2WebSocketError` when the server does not allow the extended CONNECT or
        answers anything but 200.
        """
        frames: list[Decoded] = []
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.RemoteSettingsChanged) and self.stream_id is None:
                self.server_settings = sorted(int(c) for c in event.changed_settings)
                self._connect()
            elif (
                isinstance(event, h2.events.ResponseReceived) and event.stream_id == self.stream_id
            ):
                self.response_headers = _text(event.headers)
                if self.status != 200:
                    raise _refused(self.status)
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == self.stream_id:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                self._reader.feed(event.data)
                frames += self._reader.frames()
            elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                self.ended = self.ended or event.stream_id == self.stream_id
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.ended = True
        for frame in frames:
            if frame.opcode == PING:
                self.send(PONG, frame.payload)
            elif frame.opcode == CLOSE and not self.ended:
                self.close_code = frame.close_code or 1005
                self.send(CLOSE, frame.payload[:2])
                self.conn.end_stream(self._stream())
                self.ended = True
        return frames

    def ping(self) -> None:
        """Queue an HTTP/2 PING: the peer must acknowledge it (RFC 9113 §6.7)."""
        self.conn.ping(b"pushlab!")

    def send(self, opcode: int, payload: bytes) -> None:
        """Queue one masked WebSocket frame on the stream."""
        self.conn.send_data(self._stream(), client_frame(opcode, payload))

    def close(self, code: int = 1000) -> None:
        """Queue a close frame and the end of the stream."""
        if self.stream_id is not None and not self.ended:
            self.send(CLOSE, close_payload(code))
            self.conn.end_stream(self.stream_id)
            self.ended = True

    def _stream(self) -> int:
        if self.stream_id is None:
            raise H2WebSocketError("the WebSocket stream is not open yet")
        return self.stream_id

    def _connect(self) -> None:
        code = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL
        self.enable_connect_protocol = self.conn.remote_settings.get(code)
        if self.enable_connect_protocol != 1 and not self.insist:
            raise H2WebSocketError(NO_EXTENDED_CONNECT)
        self.stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(self.stream_id, self.request_headers)


class H2WebSocketConnection:
    """:class:`H2WebSocket` on an asyncio stream: whole messages in, text out."""

    def __init__(
        self,
        ws: H2WebSocket,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        ping_interval_s: float | None = None,
        ping_timeout_s: float | None = None,
    ) -> None:
        self.ws, self.reader, self.writer = ws, reader, writer
        self.ping_interval_s, self.ping_timeout_s = ping_interval_s, ping_timeout_s
        self.pings_sent = 0
        self._pending: list[Decoded] = []
        self._parts: list[bytes] = []
        self._kind = TEXT

    @property
    def socket(self) -> Any:
        return self.writer.get_extra_info("socket")

    async def _pump(self) -> None:
        data = await self._read()
        if not data:
            self.ws.ended = True
        else:
            self._pending += self.ws.receive_data(data)
        await self.flush()

    async def _read(self) -> bytes:
        """The next bytes; a PING after ``ping_interval_s`` of silence, and an error when nothing
        comes within ``ping_timeout_s`` after it (any bytes prove the peer alive)."""
        if self.ping_interval_s is None:
            return await self.reader.read(READ_BYTES)
        try:
            # asyncio.timeout: one timer per read; wait_for would wrap every read in a task.
            async with asyncio.timeout(self.ping_interval_s):
                return await self.reader.read(READ_BYTES)
        except TimeoutError:
            pass

        async def answer() -> bytes:
            self.ws.ping()
            self.pings_sent += 1
            await self.flush()
            return await self.reader.read(READ_BYTES)

        try:
            async with asyncio.timeout(self.ping_timeout_s):
                return await answer()
        except TimeoutError:
            raise H2WebSocketError(
                f"no answer to an HTTP/2 PING within {self.ping_timeout_s} s: the server or the "
                "path is gone"
            ) from None

    async def flush(self) -> None:
        if out := self.ws.data_to_send():
            self.writer.write(out)
            await self.writer.drain()

    async def handshake(self) -> None:
        """Until the server answered the extended CONNECT with 200."""
        await self.flush()
        while self.ws.status is None:
            if self.ws.ended:
                raise H2WebSocketError("the connection ended before the CONNECT was answered")
            await self._pump()

    async def send_text(self, text: str) -> None:
        self.ws.send(TEXT, text.encode())
        await self.flush()

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str | bytes]:
        """Whole messages (fragments joined) until the stream ends."""
        while True:
            while self._pending:
                frame = self._pending.pop(0)
                if frame.opcode not in (TEXT, BINARY, CONTINUATION):
                    continue
                self._parts.append(frame.payload)
                if frame.opcode != CONTINUATION:
                    self._kind = frame.opcode
                if frame.fin:
                    payload, self._parts = b"".join(self._parts), []
                    yield payload.decode() if self._kind == TEXT else payload
            if self.ws.ended:
                code = self.ws.close_code
                if code is not None and code not in RETRYABLE_CLOSE_CODES:
                    raise FatalTransportError(f"closed with {code}", close_code=code)
                return
            await self._pump()


@asynccontextmanager
async def connect(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None,
    subprotocols: Sequence[str] = (),
    headers: dict[str, str] | None = None,
    open_timeout_s: float = 10.0,
    ping_interval_s: float | None = None,
    ping_timeout_s: float | None = None,
    close_timeout_s: float = 10.0,
) -> AsyncIterator[H2WebSocketConnection]:
    """A WebSocket over HTTP/2 to ``url`` (``wss://``: TLS with ALPN ``h2``; ``ws://``: h2c by
    prior knowledge). Leaving it takes at most ``close_timeout_s`` (then the socket is aborted),
    also when the task is cancelled."""
    parts = urlsplit(url)
    tls = parts.scheme == "wss"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if tls else 80)
    if tls:
        if ssl_context is None:
            raise ValueError("wss:// needs an SSL context")
        ssl_context.set_alpn_protocols(["h2"])
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    async with asyncio.timeout(open_timeout_s):
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl_context if tls else None)
    try:
        if tls and writer.get_extra_info("ssl_object").selected_alpn_protocol() != "h2":
            raise H2WebSocketError("the server did not negotiate h2 by ALPN")
        ws = H2WebSocket(
            parts.netloc, path, scheme="https" if tls else "http", subprotocols=subprotocols,
            headers=headers,
        )  # fmt: skip
        conn = H2WebSocketConnection(
            ws, reader, writer, ping_interval_s=ping_interval_s, ping_timeout_s=ping_timeout_s
        )
        async with asyncio.timeout(open_timeout_s):
            await conn.handshake()
        yield conn
        ws.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(close_timeout_s):
                await conn.flush()
    finally:
        writer.close()
        try:
            async with asyncio.timeout(close_timeout_s):
                await writer.wait_closed()
        except (OSError, ssl.SSLError, TimeoutError):
            writer.transport.abort()
