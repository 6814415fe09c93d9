"""Server-Sent Events client on httpx + httpx-sse.

Resumes with ``Last-Event-ID`` (the last seq it delivered) and honours the server's ``retry:`` as
the base of its backoff. The read timeout is a liveness check: the server sends a comment at
least every ``keepalive_s``, so silence longer than ``read_timeout_s`` means a dead connection
(or server), and the client reconnects. With ``token=`` the JWT goes in ``Authorization: Bearer``
(fetch-style); ``token_in_query=True`` sends ``?token=`` instead, as EventSource must.
``wire="stream"`` swaps httpx for the lean parser of :mod:`clients.sse_wire` (load generation).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import AsyncGenerator
from typing import Any, Literal

from httpx_sse import aconnect_sse

from clients._http import raise_for_status, session_http
from clients.base import FeedClient, RawItem, Ready, tls_context
from clients.sse_wire import stream_messages
from feed.codec import decode_event, gap_from_dict, loads
from feed.wire.contract import PATHS


class _End(enum.Enum):
    """:meth:`SSEClient._item` for ``event: end``: the server ended the stream."""

    END = 0


class SSEClient(FeedClient):
    """One long-lived ``text/event-stream`` response per connection."""

    transport = "sse"

    def __init__(
        self,
        url: str,
        topic: str,
        *,
        read_timeout_s: float = 45.0,
        token_in_query: bool = False,
        wire: Literal["httpx", "stream"] = "httpx",
        **kwargs: Any,
    ) -> None:
        super().__init__(url, topic, **kwargs)
        self.read_timeout_s = read_timeout_s
        self.token_in_query = token_in_query
        if wire not in ("httpx", "stream"):
            raise ValueError(f"wire must be 'httpx' or 'stream', got {wire!r}")
        if wire == "stream" and (self.http2 or self.http3 or self.http is not None):
            raise ValueError("wire='stream' speaks HTTP/1.1 on its own socket; use wire='httpx'")
        self.wire = wire

    def _request(self) -> tuple[dict[str, str], dict[str, str]]:
        params = {"topic": self.topic}
        if self.token_in_query and self.token is not None:
            headers, params["token"] = dict(self.headers), self.token
        else:
            headers = dict(self.auth_headers())
        if self.last_seq is not None:
            headers["Last-Event-ID"] = str(self.last_seq)
        return params, headers

    def _session(self) -> AsyncGenerator[RawItem, None]:
        return self._stream_session() if self.wire == "stream" else self._httpx_session()

    async def _stream_session(self) -> AsyncGenerator[RawItem, None]:
        params, headers = self._request()
        ctx = None
        if self.url.startswith("https"):
            ctx = tls_context(self.verify)

        def on_socket(sock: Any) -> None:
            self._sock = sock

        counted = False
        messages = stream_messages(
            self.url, params, headers, self.read_timeout_s, ctx, on_socket=on_socket
        )
        async with contextlib.aclosing(messages):
            async for msg in messages:
                if not counted:  # the first message proves a 200 stream, as raise_for_status
                    counted = True
                    self.counters.requests += 1
                    self.counters.connections += 1
                item = self._item(msg.event, msg.data, msg.retry)
                if item is _End.END:
                    return
                if item is not None:
                    yield item

    async def _httpx_session(self) -> AsyncGenerator[RawItem, None]:
        params, headers = self._request()
        async with (
            session_http(self, self.read_timeout_s) as http,
            aconnect_sse(
                http, "GET", self.url + PATHS["sse"], params=params, headers=headers
            ) as source,
        ):
            stream = source.response.extensions.get("network_stream")
            self._sock = stream.get_extra_info("socket") if stream is not None else None
            await raise_for_status(source.response)
            self.counters.requests += 1
            self.counters.connections += 1
            async for sse in source.aiter_sse():
                item = self._item(sse.event, sse.data, sse.retry)
                if item is _End.END:
                    return
                if item is not None:
                    yield item

    def _item(self, kind: str, data: str | bytes, retry: int | None) -> RawItem | _End | None:
        """One SSE message as a client item, ``END`` for ``event: end``, None to skip."""
        if retry is not None:
            self.server_retry_s = retry / 1000
        if kind == "message":
            return (decode_event(data), len(data)) if data else None
        if kind == "ready":
            return Ready(int(loads(data)["cursor"]))
        if kind == "gap":
            return gap_from_dict(loads(data))
        return _End.END if kind == "end" else None
