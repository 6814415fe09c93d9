"""Issue 8's ratios: each Python transport against the Node ``ws`` row measured in the same run.

Computed from the ``perf`` profile's cells (tags ``perf`` + ``paced``/``flat``/``idle``). A ratio
only counts when neither its cell nor the Node cell was generator-bound (a load generator
process at >= 90% of a core measures the client, not the server) and both lost nothing.

Flat out, a figure is a server's capacity only if that server was the limit (>= 90% of a core)
and every subscriber was connected before the ticker started. A server below its limit can do
at least what it did, so with one side saturated the ratio is a bound: a flat row counts when
both servers were saturated, or when the bound alone decides the target (Python unsaturated and
the lower bound meets it; Node unsaturated and the upper bound misses it). With neither
saturated it does not count. The row's ``note`` says which side was the limit.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from experiments.cells import SERVER_BOUND_PCT
from experiments.matrix import variant
from experiments.records import BenchCell, RatioRow
from experiments.report_base import Cells, Section, f

# The cell figures a ratio row compares.
Figure = Literal["server_cpu_s_per_1k_events", "latency_ms_p99", "events_per_s"]

# (figure, transport, bound, direction): ratio <= bound ("max") or >= bound ("min").
CPU_TARGETS = {"ws": 1.0, "sse": 1.0, "long-poll": 2.0}
P99_TARGETS = {"ws": 1.0, "sse": 1.0}
CAPACITY_TARGET = 1.0
IDLE_TARGET_KIB = 16.0
# Issue 18's knee targets: (pushlab row's transport, reference row label, minimum ratio).
KNEE_TARGETS = (
    ("ws", "node ws", 1.0), ("sse", "node sse", 1.0), ("long-poll", "pushlab sse", 0.5),
    # Not issue 18's: whether a polling knee is Python's or the transport's (plain Node http).
    ("poll", "node poll", 1.0), ("long-poll", "node long-poll", 1.0),
)  # fmt: skip
IDLE_QUORUM = 0.95
# Flat out, a cell that delivered >= 95% of subscribers x rate was limited by the ticker.
TICKER_BOUND = 0.95
HEADER = [
    "figure", "server", "transport", "rate", "python", "node ws", "ratio", "target", "met",
    "counts",
]  # fmt: skip


def _perf(cells: Cells, tag: str) -> Cells:
    return [
        c
        for c in cells
        if c.get("status") == "ok" and "perf" in c.get("tags", []) and tag in c.get("tags", [])
    ]


def _node(cells: Cells, rate: float) -> BenchCell | None:
    return next(
        (c for c in cells if c.get("server") == "node" and c["transport"] == "ws"
         and c["rate"] == rate), None,
    )  # fmt: skip


def server_label(c: BenchCell) -> str:
    """``python``, ``node`` or ``granian``, plus implementation settings (``sse_impl=pushlab``)."""
    return " ".join([str(c.get("server", "python")), *variant(c.get("server_env"))])


def _who(c: BenchCell) -> str:
    return f"{server_label(c)} {c['transport']}"


def _why_not(*cells: BenchCell) -> str:
    bad = []
    for c in cells:
        if c.get("generator_bound"):
            bad.append(f"{_who(c)}: generator at {c.get('generator_cpu_pct', math.nan):.0f}% CPU")
        if c.get("lost"):
            bad.append(f"{_who(c)}: {c['lost']} lost")
        if c.get("preconnected") is False:
            bad.append(f"{_who(c)}: ticker started before every subscriber was connected")
    return "; ".join(bad)


def _server_pct(c: BenchCell) -> float:
    return float(c.get("server_cpu_pct", math.nan))


def _saturated(c: BenchCell) -> bool:
    return bool(c.get("server_bound", _server_pct(c) >= SERVER_BOUND_PCT))


def _client_cost(c: BenchCell) -> str:
    """How many cores a saturated server would need for its load generators, from this cell."""
    gen, server = c.get("generator_cpu_s_per_1k_events"), c.get("server_cpu_s_per_1k_events")
    if not gen or not server or not (math.isfinite(gen) and math.isfinite(server)):
        return ""
    r = gen / server
    return f"; generators {r:.1f}x its CPU per event: a saturated server needs {r:.1f} cores more"


def _capacity(row: RatioRow, c: BenchCell, node: BenchCell | None) -> None:
    """Flat-out rules on top of :func:`_row`'s: which side was the limit, and what that means."""
    if node is None:
        return
    cpu = f"server CPU {_who(c)} {_server_pct(c):.0f}%, node ws {_server_pct(node):.0f}% of a core"
    if "machine_cpu_pct" in c:
        cpu += f"; machine {c['machine_cpu_pct']:.0f}% busy"
    # A server below its limit can do at least what it did: its figure is a lower bound of its
    # capacity, so the ratio is a lower bound (Python unsaturated) or an upper bound (Node).
    why = []
    if _saturated(node) and _saturated(c):
        note = "both servers saturated: capacity ratio"
    elif _saturated(node):
        note = f"{_who(c)} server not saturated: the ratio is a lower bound"
        if not row["met"]:
            why.append(f"{_who(c)} server not saturated and the lower bound misses the target")
    elif _saturated(c):
        note = "node ws server not saturated: the ratio is an upper bound"
        if row["met"]:
            why.append("node ws server not saturated and the upper bound meets the target")
    else:
        note = "neither server saturated: no capacity measured"
        why.append(note)
    for cell in (c, node):
        asked = cell.get("subscribers", 0) * cell.get("rate", 0)
        if asked and cell.get("events_per_s", 0) >= TICKER_BOUND * asked:
            note += f"; {_who(cell)} delivered what the ticker asked: the ticker was the limit"
    row["note"] = f"{note} ({cpu}{_client_cost(c)})"
    if why:
        row["why_not"] = "; ".join(filter(None, [row["why_not"], *why]))
        row["counts"] = False


def _row(
    figure: str, c: BenchCell, node: BenchCell | None, key: Figure, target: float, up: bool
) -> RatioRow:
    value = float(c.get(key, math.nan))
    base = float(node.get(key, math.nan)) if node else math.nan
    ratio = value / base if base and math.isfinite(base) else math.nan
    met = bool(ratio >= target) if up else bool(ratio <= target)
    why = _why_not(c, node) if node else "no Node ws cell in this run"
    return {
        "figure": figure, "server": server_label(c), "transport": c["transport"],
        "rate": c["rate"], "python": value, "node_ws": base, "ratio": ratio,
        "target": f"{'>=' if up else '<='} {target:g}", "met": met and math.isfinite(ratio),
        "counts": not why, "why_not": why, "note": "",
    }  # fmt: skip


def compute(cells: Cells) -> list[RatioRow]:
    """One row per target figure (empty when the run has no perf or capacity cells)."""
    rows: list[RatioRow] = []
    for c in _perf(cells, "paced"):
        if c.get("server") == "node":
            continue
        node = _node(_perf(cells, "paced"), c["rate"])
        t = c["transport"]
        if t in CPU_TARGETS:
            key: Figure = "server_cpu_s_per_1k_events"
            rows.append(_row("CPU s / 1k events", c, node, key, CPU_TARGETS[t], False))
        if t in P99_TARGETS:
            rows.append(_row("p99 latency ms", c, node, "latency_ms_p99", P99_TARGETS[t], False))
    flat = _perf(cells, "flat")
    node_flat = next((c for c in flat if c.get("server") == "node"), None)
    for c in flat:
        if c.get("server") != "node":
            row = _row("flat-out events/s", c, node_flat, "events_per_s", CAPACITY_TARGET, True)
            _capacity(row, c, node_flat)
            rows.append(row)
    for c in _perf(cells, "idle"):
        if c.get("server") == "node" or c["transport"] not in P99_TARGETS:
            continue
        node_idle = next(
            (n for n in _perf(cells, "idle")
             if n.get("server") == "node" and n["transport"] == c["transport"]), None,
        )  # fmt: skip
        kib = float(c.get("memory_per_connection_kb", math.nan))
        # Sockets the kernel accepted are not yet served connections: only a cell in which
        # (nearly) every subscriber connected and stayed open measures memory per connection.
        want = int(c.get("subscribers", 0))
        full = min(c.get("idle_connections", 0), c.get("connected", 0)) >= IDLE_QUORUM * want
        rows.append({
            "figure": f"KiB / idle conn ({c.get('idle_connections')} open)",
            "server": server_label(c), "transport": c["transport"], "rate": 0.0,
            "python": kib,
            "node_ws": float(node_idle["memory_per_connection_kb"]) if node_idle else math.nan,
            "ratio": math.nan, "target": f"<= {IDLE_TARGET_KIB:g} KiB",
            "met": bool(kib <= IDLE_TARGET_KIB), "counts": full,
            "why_not": "" if full else (
                f"{c.get('connected')} connected, {c.get('idle_connections')} open of {want}"
            ), "note": "",
        })  # fmt: skip
    from experiments.ladder.targets import rows as ladder_rows

    return rows + capacity_rows(cells) + ladder_rows(cells)


def _knee_verdict(c: Mapping[str, Any], ref: Mapping[str, Any], met: bool) -> str:
    """Why a knee ratio does not count ('' when it does): a lower bound decides only one way."""
    low, ref_low = bool(c.get("lower_bound")), bool(ref.get("lower_bound"))
    if low and ref_low:
        whys = f"{c.get('why')} {ref.get('why')}"
        cause = "generator" if "generator" in whys else "machine" if "machine" in whys else ""
        return "inconclusive: " + (f"{cause}-bound" if cause else "both knees are lower bounds")
    if low and not met:
        return f"inconclusive: {c['row']} knee is a lower bound and misses the target"
    if ref_low and met:
        return f"inconclusive: {ref['row']} knee is a lower bound and the ratio meets the target"
    return ""


def capacity_rows(cells: Sequence[Mapping[str, Any]]) -> list[RatioRow]:
    """Issue 18's knee targets from a capacity run's knee rows (empty without them)."""
    knees = {c["row"]: c for c in cells if c.get("kind") == "knee" and c.get("search") == "knee"}
    rows: list[RatioRow] = []
    for transport, ref_label, target in KNEE_TARGETS:
        ref = knees.get(ref_label)
        for c in knees.values():
            if c.get("server") != "python" or c.get("transport") != transport:
                continue
            value = float(c.get("events_per_s") or 0.0)
            base = float(ref.get("events_per_s") or 0.0) if ref else math.nan
            ratio = value / base if base else math.nan
            met = bool(ratio >= target)
            why = _knee_verdict(c, ref, met) if ref else f"no {ref_label} knee in this run"
            rows.append({
                "figure": "knee events/s", "server": c["row"], "transport": transport,
                "rate": float(c.get("rate") or 0.0), "python": value, "node_ws": base,
                "ratio": ratio, "target": f">= {target:g}x {ref_label}", "met": met,
                "counts": not why, "why_not": why,
                "note": f"reference: {ref_label} knee; {c['row']} {c.get('why', '')}",
            })  # fmt: skip
    return rows


def write(folder: Path, rows: list[RatioRow]) -> None:
    """``ratios.json`` and ``ratios.csv`` next to ``summary.json``."""
    clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
              for k, v in r.items()} for r in rows]  # fmt: skip
    (folder / "ratios.json").write_text(json.dumps({"ratios": clean}, indent=1))
    with open(folder / "ratios.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["figure"])
        w.writeheader()
        w.writerows(clean)


def section(cells: Cells) -> Section | None:
    """The report's ratios table (None when the run has no perf cells)."""
    rows = compute(cells)
    if not rows:
        return None
    knee = any(r["figure"] == "knee events/s" for r in rows)
    title = "Knee targets against the reference rows (issue 18, same run)" if knee else None
    s = Section(title or "Against the Node ws row (issue 8 targets, same run)")
    s.header = HEADER
    for r in rows:
        counts = "yes" if r["counts"] else f"no: {r['why_not']}"
        s.rows.append([
            r["figure"], r["server"], r["transport"], f(r["rate"]), f(r["python"]),
            f(r["node_ws"]), f(r["ratio"]), r["target"], "yes" if r["met"] else "NO",
            f"{counts} [{r['note']}]" if r["note"] else counts,
        ])  # fmt: skip
    s.text.append(
        "A row counts only when no load generator process of either cell reached 90% of a core "
        "and neither lost an event; a memory row counts when >= 95% of the connections were "
        "served and open when RSS was read. Flat out, every subscriber is connected before the "
        "ticker starts; a server below 90% of a core was not at its limit, so its figure only "
        "bounds its capacity: a flat row counts when both servers were saturated or the bound "
        "alone decides the target, and its note says which side was the limit."
    )
    if knee:
        s.text.append(
            "A knee row compares delivered events/s at the knees (the `node ws` column holds the "
            "reference row named in the target). A knee that is only a lower bound (a load "
            "generator near a full core, or a ladder that ended unbroken) decides a target only "
            "one way; with both sides lower bounds the row is inconclusive."
        )
    return s
