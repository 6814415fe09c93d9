"""Per-process delivery counters and a fine latency histogram, mergeable across Locust workers.

Locust's own statistics round response times to whole milliseconds below 100 ms, too coarse for
loopback push latency (typically 0.2-5 ms), and know nothing of duplicates or gaps. A
:class:`Tally` keeps both; workers ship their deltas to the master with every stats report
(``report_to_master``/``worker_report``), and the master (or the only process) writes the merged
summary as JSON at exit. Pure Python, no I/O: safe under gevent and in asyncio code alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

COUNTERS = (
    "delivered",
    "bytes",
    "duplicates",
    "gaps",
    "silent_gaps",
    "failures",
    "reconnects",
    "connections",
    "requests",
    "empty_responses",
    "hub_blocked",
)


def bucket(latency_ms: float) -> float:
    """Latency rounded to three significant digits (0.1 % relative resolution)."""
    return float(f"{latency_ms:.3g}")


@dataclass
class Tally:
    """What the users of one process saw since the last :meth:`take`."""

    delivered: int = 0
    bytes: int = 0
    duplicates: int = 0
    gaps: int = 0
    silent_gaps: int = 0
    failures: int = 0
    reconnects: int = 0
    connections: int = 0
    requests: int = 0
    empty_responses: int = 0
    hub_blocked: int = 0  # times gevent's monitor saw the hub blocked (0 = cooperative)
    first_ns: int = 0
    last_ns: int = 0
    open_sessions: int = 0  # subscriptions delivering right now in this process
    peak_open: int = 0  # most at once since the last take(): 1 means users were serialised
    hist: dict[float, int] = field(default_factory=dict)
    users_delivering: set[str] = field(default_factory=set)

    def event(self, latency_ms: float, nbytes: int, recv_ns: int) -> None:
        """Record one delivered event."""
        self.delivered += 1
        self.bytes += nbytes
        key = bucket(latency_ms)
        self.hist[key] = self.hist.get(key, 0) + 1
        if not self.first_ns:
            self.first_ns = recv_ns
        self.last_ns = recv_ns

    def take(self) -> dict[str, Any]:
        """A plain, msgpack-able snapshot; resets this tally (workers send deltas)."""
        snap: dict[str, Any] = {name: getattr(self, name) for name in COUNTERS}
        snap["first_ns"], snap["last_ns"] = self.first_ns, self.last_ns
        snap["hist"] = [[k, v] for k, v in self.hist.items()]
        snap["users_delivering"] = sorted(self.users_delivering)
        snap["peak_open"] = self.peak_open
        open_now = self.open_sessions
        self.reset()
        self.open_sessions = self.peak_open = open_now
        return snap

    def reset(self) -> None:
        """Back to zero (a new test in the web UI, or after a snapshot)."""
        for f in fields(self):
            setattr(self, f.name, type(getattr(self, f.name))())

    def merge(self, snap: dict[str, Any]) -> None:
        """Add a snapshot taken by :meth:`take` (from a worker, or from this process)."""
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + int(snap.get(name, 0)))
        if snap.get("first_ns"):
            first = int(snap["first_ns"])
            self.first_ns = min(self.first_ns, first) if self.first_ns else first
        self.last_ns = max(self.last_ns, int(snap.get("last_ns", 0)))
        for k, v in snap.get("hist", []):
            self.hist[float(k)] = self.hist.get(float(k), 0) + int(v)
        self.users_delivering.update(snap.get("users_delivering", []))
        self.peak_open = max(self.peak_open, int(snap.get("peak_open", 0)))


def percentile(hist: dict[float, int], p: float) -> float:
    """Nearest-rank percentile of a histogram; NaN when empty."""
    total = sum(hist.values())
    if not total:
        return math.nan
    rank = max(1, math.ceil(p / 100 * total))
    seen = 0
    for key in sorted(hist):
        seen += hist[key]
        if seen >= rank:
            return key
    return max(hist)


def summary(merged: Tally) -> dict[str, Any]:
    """The final figures: counters, percentiles, span of delivery and the histogram."""
    out: dict[str, Any] = {name: getattr(merged, name) for name in COUNTERS}
    span_s = (merged.last_ns - merged.first_ns) / 1e9
    out["span_s"] = span_s
    out["events_per_s"] = merged.delivered / span_s if span_s > 0 else 0.0
    out["bytes_per_event"] = merged.bytes / merged.delivered if merged.delivered else 0.0
    for p in (50, 90, 99, 99.9):
        out[f"latency_ms_p{p:g}".replace(".", "_")] = percentile(merged.hist, p)
    out["latency_ms_max"] = max(merged.hist) if merged.hist else math.nan
    out["users_delivering"] = len(merged.users_delivering)
    out["peak_open_sessions"] = merged.peak_open
    out["hist"] = sorted([k, v] for k, v in merged.hist.items())
    return out
