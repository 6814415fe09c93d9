"""WebSocket client on the ``websockets`` asyncio implementation; resumes with ``?since=``."""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import connect

from clients.base import FeedClient, RawItem, Ready
from feed.codec import decode_event, gap_from_dict, loads


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
        **kwargs: Any,
    ) -> None:
        super().__init__(url, topic, **kwargs)
        self.max_size = max_size
        self.ping_interval_s = ping_interval_s

    def ws_url(self) -> str:
        """The ``ws://`` URL of the next connection, with the resume cursor."""
        query = {"topic": self.topic}
        if self.last_seq is not None:
            query["since"] = str(self.last_seq)
        base = "ws" + self.url.removeprefix("http")
        return f"{base}/ws?{urlencode(query)}"

    def _ssl(self) -> ssl.SSLContext | None:
        """TLS context for ``wss://`` (``verify`` as for the HTTP clients); None for ``ws://``."""
        if not self.url.startswith("https"):
            return None
        if isinstance(self.verify, ssl.SSLContext):
            return self.verify
        ctx = ssl.create_default_context()
        if not self.verify:
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        return ctx

    async def _session(self) -> AsyncGenerator[RawItem, None]:
        async with connect(
            self.ws_url(),
            additional_headers=self.headers,
            max_size=self.max_size,
            ping_interval=self.ping_interval_s,
            open_timeout=10,
            ssl=self._ssl(),
        ) as ws:
            self._sock = ws.transport.get_extra_info("socket")
            self.counters.requests += 1
            self.counters.connections += 1
            async for message in ws:
                obj = loads(message)
                kind = obj.get("type")
                if kind is None:
                    yield decode_event(obj), len(message)
                elif kind == "ready":
                    yield Ready(int(obj["cursor"]))
                elif kind == "gap":
                    yield gap_from_dict(obj)
