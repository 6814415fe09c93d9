"""Percentile maths."""

import math

from experiments.metrics import percentile, summarize


def test_nearest_rank_percentile():
    """Nearest-rank: p50 of 1..100 is 50, p99 is 99, p100 is the max."""
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50,
        99,
        100,
    )


def test_empty_is_nan():
    """No samples give NaN, never zero."""
    assert math.isnan(percentile([], 50))
    assert summarize([]) == {"count": 0.0}


def test_summary_keys():
    """Summaries carry count, mean and the percentile keys with the prefix."""
    s = summarize([3.0, 1.0, 2.0], prefix="lat_")
    assert s["lat_count"] == 3 and s["lat_mean"] == 2.0 and s["lat_p50"] == 2.0
    assert s["lat_max"] == 3.0 and "lat_p99_9" in s
