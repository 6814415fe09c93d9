"""HTTP streaming client: NDJSON lines over one raw HTTP/1.1 GET per connection.

A user's code would read ``/stream`` with any HTTP client that yields body bytes as they come
(``fetch()`` and a ``ReadableStream`` in a browser, :mod:`clients.web.stream`); this one uses the
lean wire of :mod:`clients.sse_wire` (the core's head parser and chunk decoder, one asyncio
stream) over HTTP/1.1, httpx when asked for HTTP/2 or given a shared client, and the core's
line splitter (:mod:`feed.wire.ndjson`) either way. Nothing reconnects for it as
EventSource does for SSE: :class:`~clients.base.FeedClient` reconnects with backoff and sends the
last seq it delivered in ``Pushlab-Cursor``. The server's ``{"type":"heartbeat"}`` lines keep a
quiet stream from looking dead: silence longer than ``read_timeout_s`` means a dead connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from clients._http import raise_for_status, session_http
from clients.base import FeedClient, RawItem, Ready, tls_context
from clients.sse_wire import body_reads
from feed.codec import decode_event, gap_from_dict, loads
from feed.wire.contract import CURSOR_HEADER, PATHS
from feed.wire.http1 import stream_request_for
from feed.wire.ndjson import LineSplitter


class StreamClient(FeedClient):
    """One long-lived ``application/x-ndjson`` response per connection."""

    transport = "stream"

    def __init__(
        self,
        url: str,
        topic: str,
        *,
        read_timeout_s: float = 45.0,
        token_in_query: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(url, topic, **kwargs)
        self.read_timeout_s = read_timeout_s
        self.token_in_query = token_in_query

    def _request(self) -> tuple[dict[str, str], dict[str, str]]:
        params = {"topic": self.topic}
        if self.token_in_query and self.token is not None:
            headers, params["token"] = dict(self.headers), self.token
        else:
            headers = dict(self.auth_headers())
        headers.setdefault("User-Agent", "pushlab-stream")
        if self.last_seq is not None:
            headers[CURSOR_HEADER] = str(self.last_seq)
        return params, headers

    def _session(self) -> AsyncGenerator[RawItem, None]:
        if self.http2 or self.http3 or self.http is not None:
            return self._httpx_session()
        return self._wire_session()

    async def _wire_session(self) -> AsyncGenerator[RawItem, None]:
        params, headers = self._request()
        ctx = tls_context(self.verify) if self.url.startswith("https") else None

        def on_socket(sock: Any) -> None:
            self._sock = sock

        reads = body_reads(
            stream_request_for, self.url, params, headers, self.read_timeout_s, ctx, on_socket
        )
        async with contextlib.aclosing(reads):
            items = self._items(reads)
            async with contextlib.aclosing(items):
                async for item in items:
                    yield item

    async def _httpx_session(self) -> AsyncGenerator[RawItem, None]:
        params, headers = self._request()
        async with (
            session_http(self, self.read_timeout_s) as http,
            http.stream(
                "GET", self.url + PATHS["stream"], params=params, headers=headers
            ) as response,
        ):
            stream = response.extensions.get("network_stream")
            self._sock = stream.get_extra_info("socket") if stream is not None else None
            await raise_for_status(response)
            items = self._items(response.aiter_bytes())
            async with contextlib.aclosing(items):
                async for item in items:
                    yield item

    async def _items(self, reads: AsyncIterator[bytes]) -> AsyncGenerator[RawItem, None]:
        """Client items from the body's bytes as they come; ends at the server's ``end``."""
        lines = LineSplitter()
        counted = False
        async for data in reads:
            if not counted:  # the first bytes prove a 200 stream
                counted = True
                self.counters.requests += 1
                self.counters.connections += 1
            for line in lines.feed(data):
                obj = loads(line)
                if not isinstance(obj, dict):
                    raise ValueError(f"not a JSON object: {line[:80]!r}")
                kind = obj.get("type")
                if kind is None:
                    yield decode_event(obj), len(line)
                elif kind == "ready":
                    yield Ready(int(obj["cursor"]))
                elif kind == "gap":
                    yield gap_from_dict(obj)
                elif kind == "end":
                    return
                # heartbeat, and any type this client does not know: nothing to deliver
