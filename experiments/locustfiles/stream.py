"""HTTP streaming subscribers: ``locust -f experiments/locustfiles/stream.py --host http://...``.

Each user holds one ``GET /stream?topic=T`` response (NDJSON: one JSON object per line, see
docs/protocol.md) and fires one Locust request per event line. The connection, resume and
reconnect are the SSE user's (:mod:`experiments.locustfiles.sse`); only the framing differs: a
line without ``type`` is an event, ``ready``/``gap`` carry the cursor, ``heartbeat`` needs no
action and ``end`` (kicked, overflow, shutdown) is a failure row, then a reconnect. Resume sends
``Pushlab-Cursor``: fetch can set headers, so the transport has no ``Last-Event-ID``. There is no
``retry:``: the backoff base is the client's own.

Options (see ``base.py``): ``LOCUST_FEED_TOPIC``, ``LOCUST_FEED_SINCE``,
``LOCUST_FEED_READ_TIMEOUT_S``, ``LOCUST_FEED_SUMMARY``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson

from experiments.locustfiles import sse as _sse  # the module, so Locust sees one user class here
from experiments.locustfiles.base import FeedError
from feed.wire.contract import CURSOR_HEADER, NDJSON_TYPE


class StreamUser(_sse.SSEUser):
    """One ``/stream`` response per user."""

    transport = "stream"
    path = "/stream"
    accept = NDJSON_TYPE
    resume_header = CURSOR_HEADER

    def read(self, response: Any) -> Iterator[tuple[Any, ...]]:
        while not self.stopping:
            line = response.readline(b"\n")
            if not line:
                raise FeedError("stream ended without an end line")
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            recv_ns = time.time_ns()
            obj = orjson.loads(line)
            kind = obj.get("type")
            if kind is None:
                yield obj["seq"], obj["ts_ns"], len(line), recv_ns
            elif kind == "ready":
                yield "ready", int(obj["cursor"])
            elif kind == "gap":
                yield "gap", int(obj["resume_after"])
            elif kind == "end":
                raise FeedError(f"server ended the stream: {line.decode(errors='replace')}")
            # heartbeat: the socket is alive; nothing to do
