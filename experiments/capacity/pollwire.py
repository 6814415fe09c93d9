"""Counting pollers: short and long polling on raw keep-alive HTTP/1.1, parsed per read.

The lab's polling clients (``clients/short_poll.py``, ``clients/long_poll.py``) run on httpx: a
request object, a response object and a decoded event list per answer, which flat out costs more
CPU than the server spends answering. These pollers keep one keep-alive connection each, write
the request as prebuilt bytes, read the answer's head and ``Content-Length`` body, pull the
events out with :mod:`experiments.countwire`'s regex and ask again from the answer's cursor:
at once for long polling (the server holds the request), ``interval_s`` after the answer for
short polling, and at once whenever the answer says ``"more":true``. Counting (latency per
event, lost and duplicate seqs, requests and empty answers per window) is countwire's.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from experiments.countwire import EVENT, Counter, Factory, Tally, Window
from feed.wire.contract import CURSOR_HEADER
from feed.wire.http1 import Head, request_head

CURSOR = re.compile(rb'"cursor":(\d+)')
EVENT_BODY = re.compile(rb'\{"topic":"[^"\\]*","seq":\d+,"ts_ns":\d+,')
MAX_BODY = 16 << 20


def _request(url: str, path: str, params: dict[str, str]) -> bytes:
    split = urlsplit(url)
    target = (split.path.rstrip("/") or "") + path + "?" + urlencode(params)
    return request_head("GET", target, split.netloc, {"User-Agent": "pushlab-pollwire"})


class PollCounter(Counter):
    """One keep-alive connection asking ``/poll`` (or ``/long-poll``) again after each answer."""

    path = "/poll"

    def __init__(self, url: str, topic: str, tally: Tally, win: Window, options: dict[str, Any]):
        self.url, self.topic = url, topic
        self.options = options
        self.cursor: int | None = None
        super().__init__(self._next_request(), tally, win)
        self.want = 0  # body bytes still expected of the current answer
        self.status = 0
        self.body = b""
        self.cursor_header: str | None = None

    def _params(self) -> dict[str, str]:
        params = {"topic": self.topic}
        if self.cursor is not None:
            params["since"] = str(self.cursor)
        return params

    def _next_request(self) -> bytes:
        return _request(self.url, self.path, self._params())

    def _opened(self, head: Head) -> None:
        if head.status not in (200, 204):
            raise ConnectionError(f"HTTP {head.status}")
        if head.headers.get("connection", "").lower() == "close":
            raise ConnectionError("the server will close the connection (no keep-alive)")
        self.status = head.status
        self.want = int(head.headers.get("content-length", "0"))
        if self.want > MAX_BODY:
            raise ValueError(f"answer of {self.want} bytes")
        self.cursor_header = head.headers.get(CURSOR_HEADER.lower())
        self.body = b""

    def _body(self, data: bytes) -> None:
        # Only the head is parsed by the base class; after each answer it is re-armed here.
        take = data[: self.want - len(self.body)]
        self.body += take
        rest = data[len(take) :]
        if len(self.body) < self.want:
            return
        if self.want == 0 or len(self.body) == self.want:
            self._answer(time.time_ns())
        if rest:
            raise ValueError("bytes after the answer: this poller sends one request at a time")

    def data_received(self, data: bytes) -> None:
        if self.ended:
            return
        if self.head is not None:
            super().data_received(data)
            # An answer with no body at all (204) is complete with its head.
            if self.head is None and self.want == 0 and not self.ended and self.status:
                self._answer(time.time_ns())
            return
        try:
            self._body(data)
        except Exception as exc:  # noqa: BLE001 - the reason goes into the result
            self.fail(f"{type(exc).__name__}: {exc}")

    def _answer(self, now: int) -> None:
        body, status = self.body, self.status
        self.status = 0
        found = EVENT.findall(body) if status == 200 else []
        if found:
            seqs, tss = zip(*found, strict=True)
            nbytes = _event_bytes(body)
            self.win.record(self.tally, now, list(seqs), list(tss), nbytes)
        cursor = CURSOR.findall(body) if status == 200 else []
        if cursor:
            self.cursor = int(cursor[-1])  # the answer's own cursor comes after its events
        elif self.cursor_header is not None:
            self.cursor = int(self.cursor_header)
        if self.tally.cursor is None and self.cursor is not None:
            self.tally.cursor = self.cursor if not found else int(found[0][0]) - 1
        self.tally.gaps += body.count(b'"gap":{')
        self.win.answered(self.tally, now, not found)
        self.head, self.body, self.want = b"", b"", 0
        self._schedule(b'"more":true' in body)

    def _schedule(self, more: bool) -> None:
        self._send_next()

    def _send_next(self) -> None:
        if self.ended or self.transport is None or self.transport.is_closing():
            return
        self.transport.write(self._next_request())


class ShortPollCounter(PollCounter):
    """Asks again ``interval_s`` after each answer (at once when the answer said more)."""

    def _schedule(self, more: bool) -> None:
        interval = float(self.options.get("interval_s", 0.25))
        if more or interval <= 0:
            self._send_next()
        else:
            asyncio.get_running_loop().call_later(interval, self._send_next)


class LongPollCounter(PollCounter):
    """Asks again at once; the server holds the request until news or ``wait_s``.

    The first request is a short poll: it answers at once with the start cursor, where a long
    poll without events (the ticker is paused until every subscriber has its cursor) would hold
    for ``wait_s``.
    """

    def _next_request(self) -> bytes:
        if self.cursor is None:
            return super()._next_request()
        wait = {"timeout": f"{float(self.options.get('wait_s', 20.0)):g}"}
        return _request(self.url, "/long-poll", self._params() | wait)


def _event_bytes(body: bytes) -> int:
    """Bytes of the events' own JSON in a batch answer (from each event's start to the next)."""
    starts = [m.start() for m in EVENT_BODY.finditer(body)]
    if not starts:
        return 0
    end = body.rfind(b'],"cursor":')
    return (end if end > starts[-1] else len(body)) - starts[0] - (len(starts) - 1)


def poll_factory(transport: str, options: dict[str, Any]) -> Factory:
    """A countwire factory for ``poll`` or ``long-poll`` with the cell's client options."""
    cls = ShortPollCounter if transport == "poll" else LongPollCounter

    def make(url: str, topic: str, tally: Tally, win: Window) -> Counter:
        return cls(url, topic, tally, win, options)

    return make
