"""WebSocket client on the ``websockets`` asyncio implementation; resumes with ``?since=``.

It answers the server's heartbeat (``{"type": "ping", "id": n}`` → ``pong``), reads JSON text or
MessagePack binary event frames (``binary=True``), and authenticates with ``token=`` in the way
``auth`` names: ``"subprotocol"`` (``pushlab.v1, bearer.<token>``, what a browser can do),
``"header"`` (``Authorization: Bearer``), ``"query"`` (``?token=``) or ``"message"`` (first
frame ``{"type": "auth"}``). Its own protocol-level pings (``ping_interval_s``) detect a dead
server: no pong within ``ping_timeout_s`` ends the connection, the close handshake waits at most
``ping_timeout_s`` more, and the client reconnects (within interval + 2 x timeout in all).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from typing import Any, Literal
from urllib.parse import urlencode

from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from clients.base import FeedClient, RawItem, Ready, tls_context
from feed.codec import control, decode_event, decode_msgpack_event, gap_from_dict, loads
from feed.wire.contract import BEARER_PREFIX, PATHS, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK

AuthMode = Literal["subprotocol", "header", "query", "message"]


class WebSocketClient(FeedClient):
    """One socket per connection; control frames carry ``type``, events do not."""

    transport = "ws"

    def __init__(
        self,
        url: str,
        topic: str,
        *,
        max_size: int = 1 << 20,
        ping_interval_s: float | None = 20.0,
        ping_timeout_s: float | None = 20.0,
        binary: bool = False,
        auth: AuthMode = "subprotocol",
        compression: bool = False,
        answer_pings: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(url, topic, **kwargs)
        if self.http3:
            # RFC 9220: no browser ships it (tests/clients/web/test_no_ws_over_h3.py).
            raise ValueError("ws: no WebSocket over HTTP/3 (RFC 9220) client here; use h1 or h2")
        if self.http is not None:
            raise ValueError("a WebSocket has a connection of its own (no shared httpx client)")
        self.max_size = max_size
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.binary = binary
        self.auth = auth
        self.compression = compression
        # Off only in tests that play a peer whose pongs never come back.
        self.answer_pings = answer_pings
        self.server_pings = 0

    def ws_url(self) -> str:
        """The ``ws://`` URL of the next connection, with the resume cursor."""
        query = {"topic": self.topic}
        if self.last_seq is not None:
            query["since"] = str(self.last_seq)
        if self.binary:
            query["format"] = "msgpack"
        if self.token is not None and self.auth == "query":
            query["token"] = self.token
        base = "ws" + self.url.removeprefix("http")
        return f"{base}{PATHS['ws']}?{urlencode(query)}"

    def _handshake(self) -> tuple[dict[str, str], list[Subprotocol]]:
        headers = self.headers
        protocols = [Subprotocol(SUBPROTOCOL_MSGPACK if self.binary else SUBPROTOCOL_JSON)]
        if self.token is not None and self.auth == "subprotocol":
            protocols.append(Subprotocol(f"{BEARER_PREFIX}{self.token}"))
        if self.token is not None and self.auth == "header":
            headers = self.auth_headers()
        return headers, protocols

    def _ssl(self) -> ssl.SSLContext | None:
        """TLS context for ``wss://`` (``verify`` as for the HTTP clients); None for ``ws://``."""
        return tls_context(self.verify) if self.url.startswith("https") else None

    def _session(self) -> AsyncGenerator[RawItem, None]:
        return self._h2_session() if self.http2 else self._h1_session()

    async def _h1_session(self) -> AsyncGenerator[RawItem, None]:
        headers, protocols = self._handshake()
        async with connect(
            self.ws_url(),
            additional_headers=headers,
            subprotocols=protocols,
            max_size=self.max_size,
            ping_interval=self.ping_interval_s,
            ping_timeout=self.ping_timeout_s,
            compression="deflate" if self.compression else None,
            open_timeout=10,
            # websockets waits 10 s for a close reply by default; a dead server never sends one.
            close_timeout=self.ping_timeout_s if self.ping_timeout_s is not None else 10,
            ssl=self._ssl(),
        ) as ws:
            self._sock = ws.transport.get_extra_info("socket")
            async for item in self._items(ws, ws.send):
                yield item

    async def _h2_session(self) -> AsyncGenerator[RawItem, None]:
        """The same conversation on one HTTP/2 stream (RFC 8441; :mod:`clients.h2ws`)."""
        if self.compression:
            raise ValueError("permessage-deflate is not offered over HTTP/2 here")
        from clients import h2ws  # the h2 library (lab extras) only when asked for

        headers, protocols = self._handshake()
        async with h2ws.connect(
            self.ws_url(),
            ssl_context=self._ssl(),
            subprotocols=protocols,
            headers=headers,
            ping_interval_s=self.ping_interval_s,
            ping_timeout_s=self.ping_timeout_s,
            close_timeout_s=self.ping_timeout_s if self.ping_timeout_s is not None else 10,
        ) as ws:
            self._sock = ws.socket
            async for item in self._items(ws, ws.send_text):
                yield item

    async def _items(
        self, messages: AsyncIterable[str | bytes], send: Callable[[str], Awaitable[None]]
    ) -> AsyncGenerator[RawItem, None]:
        """One connection's messages as client items; answers the app's heartbeat."""
        self.counters.requests += 1
        self.counters.connections += 1
        if self.token is not None and self.auth == "message":
            await send(control("auth", token=self.token).decode())
        async for message in messages:
            if isinstance(message, bytes):
                yield decode_msgpack_event(message), len(message)
                continue
            obj = loads(message)
            kind = obj.get("type")
            if kind is None:
                yield decode_event(obj), len(message)
            elif kind == "ready":
                yield Ready(int(obj["cursor"]))
            elif kind == "gap":
                yield gap_from_dict(obj)
            elif kind == "ping":
                self.server_pings += 1
                if self.answer_pings:
                    await send(control("pong", id=obj.get("id")).decode())
