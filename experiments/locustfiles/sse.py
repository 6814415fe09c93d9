"""Server-Sent Events subscribers: ``locust -f experiments/locustfiles/sse.py --host http://...``.

Each user holds one ``GET /sse?topic=T`` stream read with geventhttpclient (gevent-native
sockets, C HTTP parser: cooperative without relying on monkey-patching) and fires one Locust
request per ``data:`` event. Resume: ``Last-Event-ID`` = the last delivered seq, or the ``id``
of the ``ready`` event when nothing was delivered yet; the server's ``retry:`` is the base of the
reconnect backoff, as in a browser. ``event: end`` (kicked, overflow,
shutdown) and a stream that just ends are failure rows, then a reconnect; a 4xx stops the user.

Divergence from the SSE spec, on purpose: lines end with LF or CRLF (what pushlab's servers and
the Node baseline send); a lone CR is not treated as a line end.

Options (see ``base.py``): ``LOCUST_FEED_TOPIC``, ``LOCUST_FEED_SINCE``,
``LOCUST_FEED_READ_TIMEOUT_S``, ``LOCUST_FEED_SUMMARY``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import orjson

from experiments.locustfiles._httpclient import open_client
from experiments.locustfiles.base import TALLY, FeedError, FeedUser, http_status_error
from feed.wire.contract import LAST_EVENT_ID


class SSEUser(FeedUser):
    """One ``/sse`` stream per user."""

    transport = "sse"
    path = "/sse"
    accept = "text/event-stream"
    resume_header = LAST_EVENT_ID

    def session(self) -> Iterator[tuple[Any, ...]]:
        client = open_client(self.host, self.read_timeout_s)
        headers = {"Accept": self.accept, "Cache-Control": "no-store"}
        if self.last_seq is not None:
            headers[self.resume_header] = str(self.last_seq)
        try:
            response = client.get(f"{self.path}?topic={quote(self.topic)}", headers=headers)
            TALLY.connections += 1
            TALLY.requests += 1
            if response.status_code != 200:
                raise http_status_error(response.status_code, response.read())
            self.sock = response._sock
            yield from self.read(response)
        finally:
            self.sock = None
            client.close()

    def read(self, response: Any) -> Iterator[tuple[Any, ...]]:
        """The items of an open stream's body, until it ends (SSE framing)."""
        kind, data = "message", b""
        while not self.stopping:
            line = response.readline(b"\n")
            if not line:
                raise FeedError("stream ended without an end event")
            line = line.rstrip(b"\r\n")
            if line:
                if line.startswith(b"data:"):
                    data = line[5:].lstrip(b" ") if not data else data + b"\n" + line[5:]
                elif line.startswith(b"event:"):
                    kind = line[6:].strip().decode()
                elif line.startswith(b"retry:") and line[6:].strip().isdigit():
                    self.retry_base_s = int(line[6:]) / 1000
                continue  # id: and ": ping" comments need no action
            if not data:
                kind = "message"
                continue
            if kind == "message":
                recv_ns = time.time_ns()
                obj = orjson.loads(data)
                yield obj["seq"], obj["ts_ns"], len(data), recv_ns
            elif kind == "ready":
                yield "ready", int(orjson.loads(data)["cursor"])
            elif kind == "gap":
                yield "gap", int(orjson.loads(data)["resume_after"])
            elif kind == "end":
                raise FeedError(f"server ended the stream: {data.decode(errors='replace')}")
            kind, data = "message", b""
