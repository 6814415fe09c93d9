"""HTTP streaming client: NDJSON lines over one raw HTTP/1.1 GET per connection.

A user's code would read ``/stream`` with any HTTP client that yields body bytes as they come
(``fetch()`` and a ``ReadableStream`` in a browser, :mod:`clients.web.stream`); this one uses the
lean wire of :mod:`clients.sse_wire` (the core's head parser and chunk decoder, one asyncio
stream) and the core's line splitter (:mod:`feed.wire.ndjson`). Nothing reconnects for it as
EventSource does for SSE: :class:`~clients.base.FeedClient` reconnects with backoff and sends the
last seq it delivered in ``Pushlab-Cursor``. The server's ``{"type":"heartbeat"}`` lines keep a
quiet stream from looking dead: silence longer than ``read_timeout_s`` means a dead connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from clients.base import FeedClient, RawItem, Ready, tls_context
from clients.sse_wire import body_reads
from feed.codec import decode_event, gap_from_dict, loads
from feed.wire.contract import CURSOR_HEADER
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

    async def _session(self) -> AsyncGenerator[RawItem, None]:
        params, headers = self._request()
        ctx = tls_context(self.verify) if self.url.startswith("https") else None

        def on_socket(sock: Any) -> None:
            self._sock = sock

        reads = body_reads(
            stream_request_for, self.url, params, headers, self.read_timeout_s, ctx, on_socket
        )
        lines = LineSplitter()
        counted = False
        async with contextlib.aclosing(reads):
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
