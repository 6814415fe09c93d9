"""One timer watching every in-flight send of an app, instead of a timeout scope per send.

A send only blocks when the peer's TCP window and uvicorn's write buffer are full (a client that
stopped reading); almost every send completes without suspending. Wrapping each one in
``asyncio.timeout`` or anyio's ``move_on_after`` arms and disarms a timer per event per
subscriber — in a py-spy profile of 200 SSE subscribers at 200 events/s, sse-starlette's per-send
cancel scopes were ~10% of server CPU. Here a send registers its task and start time in a dict;
one periodic check (every ``timeout / CHECKS_PER_TIMEOUT``) cancels the tasks whose send has
been in flight longer than ``timeout``, and leaving the ``with`` block turns that cancellation
into ``TimeoutError``. A stalled send is therefore detected after between ``timeout`` and
``timeout * (1 + 1 / CHECKS_PER_TIMEOUT)`` seconds.
"""

from __future__ import annotations

import asyncio
from typing import Any

CHECKS_PER_TIMEOUT = 4


class SendWatchdog:
    """Bounds the time a task may spend in ``with watchdog:``; one per app (see AppState).

    Used as a plain (synchronous) context manager around the awaits of a send, so the hot path
    allocates nothing: enter records ``(task, start)``, exit removes it and turns the watchdog's
    own cancellation into ``TimeoutError``.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._inflight: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def __enter__(self) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        assert task is not None
        self._inflight[task] = loop.time()
        if self._timer is None and self.timeout_s > 0:
            self._timer = loop.call_later(self.timeout_s / CHECKS_PER_TIMEOUT, self._check, loop)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inflight.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            if kind is asyncio.CancelledError and task.uncancel() == 0:
                raise TimeoutError(f"send stalled for more than {self.timeout_s:g} s") from None

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        limit = loop.time() - self.timeout_s
        for task, since in list(self._inflight.items()):
            if since <= limit and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        # Re-armed only while something is in flight: an idle server runs no periodic timer.
        if self._inflight:
            self._timer = loop.call_later(self.timeout_s / CHECKS_PER_TIMEOUT, self._check, loop)

    def close(self) -> None:
        """Stop the timer (lifespan end)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
