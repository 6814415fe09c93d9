"""The token bucket, on a hand-driven clock."""

from __future__ import annotations

import pytest

from feed.ratelimit import TokenBucket


def test_burst_then_sustained_rate():
    """A full bucket admits `burst` at once, then `rate` per second."""
    b = TokenBucket(rate=10, burst=5, now=0.0)
    assert [b.allow(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert b.retry_after() == pytest.approx(0.1)
    assert b.allow(0.1) and not b.allow(0.1)
    assert sum(b.allow(1.0 + i / 100) for i in range(100)) == pytest.approx(14, abs=1)


def test_idle_time_refills_only_up_to_burst():
    """A long pause refills at most `burst` tokens."""
    b = TokenBucket(rate=100, burst=3, now=0.0)
    assert sum(b.allow(1000.0) for _ in range(10)) == 3


def test_bad_parameters():
    """A bucket needs a positive rate and a burst of at least one."""
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1, now=0)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0, now=0)
