"""WebTransport over HTTP/3 client (aioquic); resumes with ``?since=`` like the WebSocket client.

Each connection first asks the server it was given (the HTTP base URL, like every client) where
WebTransport listens and which certificate to pin (``GET /webtransport``), as the browser page
does; then it opens a QUIC connection, pins the certificate by SHA-256, sends the extended CONNECT
to ``/wt`` and reads the server's unidirectional stream: newline-delimited JSON, ``ready`` and
``gap`` lines, events, an ``end`` line (servers/webtransport/session.py). The token travels as
``?token=``: the browser's WebTransport API cannot set request headers.

``datagrams=True`` asks for events as datagrams: unreliable, so the client sees holes in
``seq``, counted in ``counters.silent_gaps`` (here they are loss, not a server bug). Datagrams
that arrive before the ``ready`` line are held until it, so the cursor is set first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from aioquic.h3.events import (
    DatagramReceived,
    DataReceived,
    H3Event,
    HeadersReceived,
    WebTransportStreamDataReceived,
)

from clients._h3 import H3Client, connect
from clients.base import FeedClient, RawItem, Ready
from clients.retry import RETRYABLE_STATUS
from feed.codec import decode_event, gap_from_dict, loads
from feed.exceptions import FatalTransportError, TransportError
from feed.wire.contract import WEBTRANSPORT, WEBTRANSPORT_INFO_PATH, WEBTRANSPORT_PATH

# Datagrams held while waiting for the ready line; more than this and the rest are loss.
HELD_DATAGRAMS = 1_000
# A refusal's JSON body is small; read at most this much of it.
MAX_ERROR_BODY = 4096


class WebTransportClient(FeedClient):
    """One QUIC connection and one WebTransport session per connection."""

    transport = WEBTRANSPORT

    def __init__(
        self,
        url: str,
        topic: str,
        *,
        datagrams: bool = False,
        origin: str | None = None,
        handshake_timeout_s: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(url, topic, **kwargs)
        if self.http2:
            raise ValueError("wt: always HTTP/3, on the port GET /webtransport names")
        self.datagrams = datagrams
        self.origin = origin
        self.handshake_timeout_s = handshake_timeout_s
        self.conn: H3Client | None = None
        self.session_id: int | None = None

    async def discover(self) -> dict[str, Any]:
        """``GET /webtransport``: the URL and the certificate hash (404: the server has none)."""
        async with httpx.AsyncClient(trust_env=False, verify=self.verify, timeout=10) as http:
            r = await http.get(f"{self.url}{WEBTRANSPORT_INFO_PATH}")
        if r.status_code == 404:
            raise FatalTransportError("wt: the server runs without WebTransport", status=404)
        r.raise_for_status()
        info: dict[str, Any] = r.json()
        return info

    def path(self) -> str:
        """``/wt?...`` of the next session, with the resume cursor."""
        query = {"topic": self.topic}
        if self.last_seq is not None:
            query["since"] = str(self.last_seq)
        if self.datagrams:
            query["datagrams"] = "1"
        if self.token is not None:
            query["token"] = self.token
        return f"{WEBTRANSPORT_PATH}?{urlencode(query)}"

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.abort()

    async def _session(self) -> AsyncGenerator[RawItem, None]:
        info = await self.discover()
        target = urlsplit(info["url"])
        host, port = target.hostname or "127.0.0.1", int(target.port or 443)
        conn = self.conn = await connect(
            host,
            port,
            cert_sha256=bytes.fromhex(info["cert_sha256"]),
            timeout_s=self.handshake_timeout_s,
        )
        try:
            headers = [] if self.origin is None else [(b"origin", self.origin.encode())]
            sid = self.session_id = conn.open_session(target.netloc, self.path(), headers)
            early = await self._accepted(conn, sid)
            self.counters.requests += 1
            self.counters.connections += 1
            async for item in self._read(conn, sid, early):
                yield item
        finally:
            conn.shutdown()
            self.conn = None

    async def _accepted(self, conn: H3Client, sid: int) -> list[H3Event]:
        """Wait for the CONNECT's answer; raise on anything but 200 (4xx fatal, like the others).

        Returns the session's events that overtook the answer (QUIC does not order streams)."""
        early: list[H3Event] = []
        while True:
            async with asyncio.timeout(self.handshake_timeout_s):
                event = await conn.queue.get()
            if event is None:
                raise TransportError("wt: the QUIC connection ended before the CONNECT's answer")
            if isinstance(event, HeadersReceived) and event.stream_id == sid:
                break
            early.append(event)
        status = int(dict(event.headers).get(b":status", b"0"))
        if status == 200:
            return early
        body = b""
        while not event.stream_ended and len(body) < MAX_ERROR_BODY:
            async with asyncio.timeout(self.handshake_timeout_s):
                event = await conn.queue.get()
            if not isinstance(event, DataReceived | HeadersReceived):
                break
            body += event.data if isinstance(event, DataReceived) else b""
        text = body[:500].decode(errors="replace")
        if 400 <= status < 500 and status not in RETRYABLE_STATUS:
            raise FatalTransportError(f"HTTP/3 {status}: {text}", status=status)
        raise TransportError(f"HTTP/3 {status}: {text}")

    async def _read(
        self, conn: H3Client, sid: int, early: list[H3Event]
    ) -> AsyncGenerator[RawItem, None]:
        buffer = b""
        held: list[bytes] | None = [] if self.datagrams else None
        early.reverse()
        while True:
            event = early.pop() if early else await conn.queue.get()
            if event is None:
                raise TransportError("wt: the QUIC connection ended")
            if isinstance(event, WebTransportStreamDataReceived) and event.session_id == sid:
                buffer += event.data
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    obj = loads(raw)
                    kind = obj.get("type")
                    if kind is None:
                        yield decode_event(obj), len(raw)
                    elif kind == "ready":
                        yield Ready(int(obj["cursor"]))
                        for datagram in held or ():
                            yield decode_event(datagram), len(datagram)
                        held = None
                    elif kind == "gap":
                        yield gap_from_dict(obj)
                    elif kind == "end":
                        return
                if event.stream_ended:
                    return
            elif isinstance(event, DatagramReceived) and event.stream_id == sid:
                if held is None:
                    yield decode_event(event.data), len(event.data)
                elif len(held) < HELD_DATAGRAMS:
                    held.append(event.data)
            elif isinstance(event, DataReceived) and event.stream_id == sid and event.stream_ended:
                return  # the server ended the session
