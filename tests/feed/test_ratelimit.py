"""Token bucket arithmetic, with time passed in."""

import pytest

from feed.ratelimit import TokenBucket


def test_burst_then_refill():
    """A full bucket allows ``burst`` frames at once, then one per 1/rate seconds."""
    b = TokenBucket(rate=10, burst=3, now=0.0)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not b.take(0.05)
    assert b.take(0.1)
    assert not b.take(0.1)


def test_refill_is_capped_at_burst():
    """A long idle period saves up at most ``burst`` tokens."""
    b = TokenBucket(rate=100, burst=2, now=0.0)
    assert [b.take(60.0) for _ in range(3)] == [True, True, False]


def test_bad_parameters_refused():
    """Zero rate or burst is a configuration error."""
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1, now=0)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0, now=0)
