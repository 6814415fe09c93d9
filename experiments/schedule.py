"""The publisher against its own schedule: how late the ticker published, and latency counted from
when each event was due rather than from when it was stamped. Pure.

Events are stamped (``ts_ns``) when published. The ticker's schedule is absolute (tick *k* due
at ``start + k / rate``) and, behind it, publishes the overdue ticks at once: their stamps are
late by as much as the loop was busy, and a latency measured from the stamp leaves that out. A
server that falls behind and coalesces would look fast. Each generator process keeps one
subscriber's ``(seq, ts_ns, arrival)`` from its first event on; the offsets ``ts_ns - seq / rate``
are constant for a punctual ticker, so the smallest offset seen is taken as "on time" (a
pre-connected step starts the ticker on idle subscribers, so its first ticks are) and every
other event's lag is its offset above that. Latency from the schedule is arrival minus due time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

QUANTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}


def schedule_figures(
    stamps: Iterable[Sequence[int]], rate: float, t0_ns: int, t1_ns: int
) -> dict[str, float]:
    """``ticker_lag_ms_*`` over the distinct events due in ``[t0, t1)`` and
    ``schedule_latency_ms_*`` over every witnessed arrival of them; {} without a rate or stamps."""
    rows = np.asarray([tuple(s) for s in stamps], dtype=np.float64).reshape(-1, 3)
    if rate <= 0 or not len(rows):
        return {}
    period_ns = 1e9 / rate
    seq, ts, arrival = rows[:, 0], rows[:, 1], rows[:, 2]
    anchor = float(np.min(ts - seq * period_ns))
    due = anchor + seq * period_ns
    in_window = (due >= t0_ns) & (due < t1_ns)
    if not in_window.any():
        return {}
    _, first = np.unique(seq[in_window], return_index=True)
    lag_ms = ((ts - due)[in_window][first]) / 1e6
    late_ms = ((arrival - due)[in_window]) / 1e6
    out: dict[str, float] = {}
    for name, values in (("ticker_lag_ms", lag_ms), ("schedule_latency_ms", late_ms)):
        for label, q in QUANTILES.items():
            out[f"{name}_{label}"] = float(np.percentile(values, q))
        out[f"{name}_max"] = float(values.max())
    return out
