"""Pure maths over samples: percentiles and summaries. No I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence

PERCENTILES = (50, 90, 99, 99.9)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already-sorted values (p in 0..100); NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def summarize(values: Sequence[float], prefix: str = "") -> dict[str, float]:
    """count, mean, min, max and the standard percentiles, keys like ``p99`` (with ``prefix``)."""
    ordered = sorted(values)
    out: dict[str, float] = {f"{prefix}count": float(len(ordered))}
    if not ordered:
        return out
    out[f"{prefix}mean"] = sum(ordered) / len(ordered)
    out[f"{prefix}min"] = float(ordered[0])
    out[f"{prefix}max"] = float(ordered[-1])
    for p in PERCENTILES:
        out[f"{prefix}p{p:g}".replace(".", "_")] = percentile(ordered, p)
    return out
