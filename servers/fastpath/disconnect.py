"""A parked request learns that its client left without a task of its own: uvicorn's cycle.

ASGI reports a disconnect only as the answer to ``receive()``, so a handler that waits for
something else needs a task sitting in ``receive()``: at the long-poll knee that task (started,
woken, cancelled per request) is CPU the server does not have. On uvicorn's HTTP/1.1
``RequestResponseCycle`` (httptools and h11 alike) ``connection_lost`` marks the cycle
``disconnected`` and sets its ``message_event``; a future put among that
:class:`asyncio.Event`'s waiters is resolved by the same ``set()``, as a ``wait()`` would be.

Only once the request body is complete (``more_body`` false, nothing unread): until then the
event also marks body chunks. The event is cleared first, as ``receive()`` does (the request's
end set it), and reading resumed, as ``receive()`` does (a paused transport would not see the
EOF). Anything but uvicorn's own cycle gets None: watch ``receive()`` then.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from feed.broker import resolve_waiter
from servers.fastpath.sse_direct import uvicorn_cycle


class DisconnectWatch:
    """``waiter`` is resolved when uvicorn notices the client left; :meth:`close` when done."""

    __slots__ = ("cycle", "waiter")

    def __init__(self, cycle: Any, waiter: asyncio.Future[None]) -> None:
        self.cycle, self.waiter = cycle, waiter
        event: asyncio.Event = cycle.message_event
        event.clear()
        cycle.flow.resume_reading()
        if cycle.disconnected:
            resolve_waiter(waiter)
        else:
            event._waiters.append(waiter)

    @property
    def gone(self) -> bool:
        """True once the client has left."""
        return bool(self.cycle.disconnected)

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.cycle.message_event._waiters.remove(self.waiter)


def watch_disconnect(send: object, waiter: asyncio.Future[None]) -> DisconnectWatch | None:
    """A :class:`DisconnectWatch` on the cycle whose ``send`` this is, or None (not uvicorn's
    cycle, or the body not read whole)."""
    cycle = uvicorn_cycle(send)
    if cycle is None or cycle.more_body or cycle.body:
        return None
    return DisconnectWatch(cycle, waiter)
