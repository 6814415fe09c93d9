"""Reconnection policy: a jittered backoff generator and the retryable-or-fatal classifier."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus

from feed.exceptions import FatalTransportError

# Close codes after which reconnecting can help: going away, abnormal, internal error, service
# restart, try again later, bad gateway. Policy (1008), bad data (1003, 1007) and too big (1009)
# would fail again the same way.
RETRYABLE_CLOSE_CODES = frozenset({1000, 1001, 1005, 1006, 1011, 1012, 1013, 1014})
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt *n* waits ``U(0, min(cap, base * factor**n))``.

    ``max_attempts=None`` retries forever (transient failures only: fatal ones always surface).
    """

    base_s: float = 0.1
    factor: float = 2.0
    cap_s: float = 10.0
    max_attempts: int | None = None

    def delays(
        self, base_s: float | None = None, rng: random.Random | None = None
    ) -> Iterator[float]:
        """Backoff delays; ``base_s`` replaces the policy's base (the server's SSE ``retry:``)."""
        pick = (rng or random).uniform
        base = self.base_s if base_s is None else base_s
        n = 0
        while self.max_attempts is None or n < self.max_attempts:
            yield pick(0.0, min(self.cap_s, base * self.factor**n))
            n += 1


def is_retryable(exc: BaseException) -> bool:
    """True when reconnecting may succeed; False for errors that would repeat (4xx, policy)."""
    if isinstance(exc, FatalTransportError):
        return False
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in RETRYABLE_STATUS
    if isinstance(exc, InvalidStatus):
        return exc.response.status_code in RETRYABLE_STATUS
    if isinstance(exc, ConnectionClosed):
        code = exc.rcvd.code if exc.rcvd is not None else 1006
        return code in RETRYABLE_CLOSE_CODES
    return isinstance(exc, httpx.TransportError | OSError | TimeoutError | EOFError)
