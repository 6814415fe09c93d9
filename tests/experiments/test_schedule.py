"""The publisher against its schedule (experiments/schedule.py): a late ticker shows."""

from __future__ import annotations

import pytest

from experiments.capacity import knee
from experiments.capacity.cells import Level
from experiments.schedule import schedule_figures

MS = 1_000_000
START = 1_700_000_000_000_000_000


def stamps(published_at, delay_ms=2):
    """Rows (seq, ts_ns, arrival) for ticks 1.. published at ``published_at(k)`` (ns)."""
    return [(k, published_at(k), published_at(k) + delay_ms * MS) for k in range(1, 201)]


def test_a_punctual_ticker_has_no_lag():
    rows = stamps(lambda k: START + k * 10 * MS)
    out = schedule_figures(rows, 100.0, START, START + 3000 * MS)
    assert out["ticker_lag_ms_max"] == pytest.approx(0.0, abs=1e-3)
    assert out["schedule_latency_ms_p99"] == pytest.approx(2.0, abs=1e-3)


def test_a_stalled_ticker_shows_as_lag_and_in_latency_from_the_schedule():
    """Ticks 50-79 go out together with tick 80 (the loop was blocked 300 ms): each is stamped
    when published, so latency from the stamp stays 2 ms; from the schedule it does not."""

    def published(k):
        return START + max(k, 80 if 50 <= k < 80 else k) * 10 * MS

    out = schedule_figures(stamps(published), 100.0, START, START + 3000 * MS)
    assert out["ticker_lag_ms_max"] == pytest.approx(300.0, abs=1e-3)
    assert out["schedule_latency_ms_max"] == pytest.approx(302.0, abs=1e-3)
    assert out["ticker_lag_ms_p50"] == pytest.approx(0.0, abs=1e-3)


def test_only_events_due_in_the_window_count():
    late_early = lambda k: START + (k + (50 if k < 20 else 0)) * 10 * MS  # noqa: E731
    out = schedule_figures(stamps(late_early), 100.0, START + 500 * MS, START + 2000 * MS)
    assert out["ticker_lag_ms_max"] == pytest.approx(0.0, abs=1e-3)


def test_nothing_without_a_rate_or_stamps():
    assert schedule_figures(stamps(lambda k: START + k * MS), 0.0, START, START + MS) == {}
    assert schedule_figures([], 100.0, START, START + MS) == {}


def test_latency_from_the_schedule_breaks_the_level():
    ok = {"step": 0, "status": "ok", "subscribers": 10, "rate": 100.0, "events_per_s": 1000.0,
          "delivered": 1000, "lost": 0, "latency_ms_p99": 5.0, "server_cpu_pct": 10.0,
          "schedule_latency_ms_p99": 40.0, "ticker_lag_ms_p99": 35.0}  # fmt: skip
    late = ok | {"step": 1, "schedule_latency_ms_p99": 250.0, "ticker_lag_ms_p99": 245.0}
    k = knee.find("pushlab sse", [ok, late], Level())
    assert k["step"] == 0 and "from the ticker's schedule 250 ms > 100 ms" in k["why"]
    assert "245 ms late" in k["why"] and k["schedule_latency_ms_p99"] == 40.0
