"""A token bucket: ``rate`` tokens per second refill a bucket of ``burst``; sans-I/O.

The clock is passed in (seconds, any monotonic origin) so tests drive it by hand and servers use
``time.monotonic()``. A whiteboard connection spends one token per frame; a frame that finds the
bucket empty is refused, never queued, so a flood cannot grow server memory.
"""

from __future__ import annotations


class TokenBucket:
    """Admit bursts of up to ``burst`` actions, ``rate`` per second sustained."""

    __slots__ = ("rate", "burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("need rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def allow(self, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if available at time ``now``."""
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def retry_after(self, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens will be available (0 if they are now)."""
        return max(0.0, (cost - self._tokens) / self.rate)
