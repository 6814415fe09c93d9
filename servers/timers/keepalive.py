"""One keep-alive timer per app for the open SSE (``sse_impl = "pushlab"``) and NDJSON streams.

A comment every ``keepalive_s`` keeps proxies and clients from taking an idle stream for a dead
one; one timer for every stream instead of a ping task per stream (what sse-starlette runs).
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Stream(Protocol):
    """What the timer needs of a stream (:class:`servers.sse.stream.Stream`)."""

    def keepalive(self) -> None:
        """Send a comment now, or have the stream's task send it."""


class KeepAlive:
    """One timer per app: every ``interval_s`` each open stream gets a comment keep-alive.

    Armed only while streams are open. The first comment of a stream comes within
    ``interval_s`` of its start (sse-starlette's: exactly ``interval_s`` after); what matters to
    proxies and clients is that an idle stream is never silent for longer than ``interval_s``.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._streams: set[Stream] = set()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, stream: Stream) -> None:
        self._streams.add(stream)
        if self._timer is None and self.interval_s > 0:
            self._timer = asyncio.get_running_loop().call_later(self.interval_s, self._tick)

    def discard(self, stream: Stream) -> None:
        self._streams.discard(stream)
        if not self._streams:
            self.close()

    def _tick(self) -> None:
        self._timer = None
        for stream in list(self._streams):
            stream.keepalive()
        if self._streams:
            self._timer = asyncio.get_running_loop().call_later(self.interval_s, self._tick)

    def close(self) -> None:
        """Stop the timer (last stream gone, or lifespan end)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
