"""One timer for the heartbeat of every feed WebSocket of an app, instead of a task per socket.

A sleeping heartbeat task per socket costs a task, its coroutine frame and a timer handle per idle
connection. Every socket of an app has the same interval and the same timeout, so the due times
of the pings, and separately of the pong deadlines, are scheduled in the order they are pushed:
two FIFO queues hold them, and one ``loop.call_at`` is armed for the earlier head. Entries are
never removed early: each carries the :class:`Beat`'s token at push time and is skipped when it
fires if the token has moved on (a pong came, a newer entry was pushed) or the socket has ended.
A stale entry only keeps its small :class:`Beat` alive, not the session, until it falls due.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Protocol

logger = logging.getLogger("pushlab.server")

# A timer may fire up to a clock tick early (libuv counts in milliseconds); entries due within
# this are taken in the same round instead of re-arming for a sub-millisecond wait.
_SLACK_S = 0.002


class Beating(Protocol):
    """What the heartbeat drives: a session's ping and its missed deadline."""

    def send_ping(self) -> None:
        """Send the next ping now (must not raise)."""

    def pong_overdue(self) -> None:
        """No matching pong within the timeout: end the session."""


class Beat:
    """One socket's place in the heartbeat; ``token`` identifies its one live entry."""

    __slots__ = ("target", "token")

    def __init__(self, target: Beating) -> None:
        self.target: Beating | None = target
        self.token = 0


_Entry = tuple[float, Beat, int]


class Heartbeats:
    """Pings every ``interval_s`` after the last pong; a missed pong deadline ends the socket."""

    def __init__(self, interval_s: float, timeout_s: float) -> None:
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._pings: deque[_Entry] = deque()
        self._deadlines: deque[_Entry] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def add(self, target: Beating) -> Beat:
        """Start beating: the first ping is due one interval from now."""
        beat = Beat(target)
        self._push(self._pings, beat, self.interval_s)
        return beat

    def answered(self, beat: Beat) -> None:
        """The pong came: cancel the deadline, the next ping is due one interval from now."""
        if beat.target is not None:
            self._push(self._pings, beat, self.interval_s)

    @staticmethod
    def remove(beat: Beat) -> None:
        """Stop beating (the socket ended); its queued entries are skipped."""
        beat.target = None

    def close(self) -> None:
        """Stop the timer and forget every entry (lifespan end)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf
        self._pings.clear()
        self._deadlines.clear()

    def _push(self, queue: deque[_Entry], beat: Beat, delay: float) -> None:
        loop = asyncio.get_running_loop()
        beat.token += 1
        when = loop.time() + delay
        queue.append((when, beat, beat.token))
        if when < self._timer_at:
            self._arm(loop, when)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._fire, loop)
        self._timer_at = when

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._timer_at = math.inf
        now = loop.time() + _SLACK_S
        deadlines, pings = self._deadlines, self._pings
        while deadlines and deadlines[0][0] <= now:
            _, beat, token = deadlines.popleft()
            target = beat.target
            if target is not None and token == beat.token:
                beat.target = None
                _call(target.pong_overdue)
        while pings and pings[0][0] <= now:
            _, beat, token = pings.popleft()
            target = beat.target
            if target is not None and token == beat.token:
                # The deadline counts from the start of the ping's send, as a peer whose
                # buffers are full blocks the send itself.
                self._push(deadlines, beat, self.timeout_s)
                _call(target.send_ping)
        heads = [q[0][0] for q in (deadlines, pings) if q]
        if heads and min(heads) < self._timer_at:
            self._arm(loop, min(heads))


def _call(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # one socket's failure must not stop every other socket's heartbeat
        logger.exception("heartbeat callback failed")
