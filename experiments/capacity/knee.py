"""Reading a row's steps: which held the service level, where it broke, and the knee. Pure.

The knee is the largest step, in ladder order, that held the level before the first one that
did not. When a generator process reached ~90% of a core at or before that point, the load
client may have been the limit, so the knee is only a lower bound of the server's capacity;
so is a knee on the ladder's last step (nothing broke), and one where the level broke while the
server had less than a core and was starved of CPU: every core busy, or the server running or
waiting runnable for a CPU (its schedstat run delay) for as much of the window as a full core
means. Such a server never idled: on a core of its own it would have done the same work in its
CPU time and had the rest to spare, so the break says what the shared machine allowed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from experiments.capacity.cells import (
    GENERATOR_FULL_PCT,
    MACHINE_FULL_PCT,
    KneeRecord,
    Level,
)

Step = Mapping[str, Any]


def p95_ms(step: Step) -> float:
    """p95 from the cell's saved latency CDF (the bench summary keeps p50/p90/p99)."""
    for q, ms in step.get("latency_cdf") or []:
        if abs(q - 0.95) < 1e-9:
            return float(ms)
    return math.nan


def delivered_pct(step: Step) -> float:
    """Share of the events each subscriber should have had that it got, in %."""
    got, lost = int(step.get("delivered", 0)), int(step.get("lost", 0))
    return 100.0 * got / (got + lost) if got + lost else math.nan


def carried_pct(step: Step) -> float:
    """Delivered events/s as a share of the offered load (subscribers x rate), in %."""
    offered = float(step.get("subscribers", 0)) * float(step.get("rate", 0.0))
    return 100.0 * float(step.get("events_per_s", 0.0)) / offered if offered else math.nan


def broke(step: Step, level: Level) -> list[str]:
    """Why a step is outside the service level (empty: it held)."""
    if step.get("status", "ok") != "ok":
        return [f"{step.get('status')}: {step.get('reason', '')}".strip()]
    why = [f"errors: {'; '.join(step['errors'][:3])}"] if step.get("errors") else []
    if step.get("silent_subscribers"):
        why.append(f"{step['silent_subscribers']} subscribers received nothing")
    if level.p95_ms is not None:
        p95 = p95_ms(step)
        if not p95 <= level.p95_ms:
            why.append(f"p95 {p95:.0f} ms > {level.p95_ms:g} ms")
        quantile, limit = "p95", level.p95_ms
    else:
        p99 = float(step.get("latency_ms_p99", math.nan))
        if not p99 <= level.p99_ms:
            why.append(f"p99 {p99:.0f} ms > {level.p99_ms:g} ms")
        quantile, limit = "p99", level.p99_ms
    # Stamped latency leaves out how late the ticker published; counted from the schedule it
    # does not (experiments/schedule.py). Absent on steps measured without the stamps.
    late = float(step.get(f"schedule_latency_ms_{quantile}", math.nan))
    if late > limit:
        lag = float(step.get(f"ticker_lag_ms_{quantile}", math.nan))
        why.append(
            f"{quantile} from the ticker's schedule {late:.0f} ms > {limit:g} ms "
            f"(it published {lag:.0f} ms late at {quantile})"
        )
    pct = delivered_pct(step)
    if not pct >= level.delivered_pct:
        why.append(f"delivered {pct:.2f}% < {level.delivered_pct:g}%")
    carried = carried_pct(step)
    if not carried >= level.carried_pct:
        why.append(f"carried {carried:.0f}% of the offered events/s (< {level.carried_pct:g}%)")
    server = float(step.get("server_cpu_pct", math.nan))
    if server >= level.server_pct:
        why.append(f"server at {server:.0f}% of a core")
    return why


def starved(step: Step, level: Level) -> str:
    """How the server, with less than its full core, was starved of CPU ('' when it was not)."""
    if float(step.get("server_cpu_pct", 0.0)) >= level.server_pct:
        return ""
    machine, wait = float(step.get("machine_cpu_pct", 0.0)), float(step.get("server_wait_pct", 0.0))
    why = []
    if machine >= MACHINE_FULL_PCT:
        why.append(f"the whole machine was {machine:.0f}% busy")
    if float(step.get("server_cpu_pct", 0.0)) + wait >= level.server_pct:
        why.append(f"the server waited runnable for a CPU {wait:.0f}% of the window")
    return " and ".join(why)


def generator_full(step: Step) -> bool:
    return float(step.get("generator_cpu_pct", 0.0)) >= GENERATOR_FULL_PCT


def find(row: str, steps: Iterable[Step], level: Level) -> KneeRecord:
    """The knee of one row from its steps in ladder order."""
    ordered = sorted(steps, key=lambda s: int(s.get("step", 0)))
    knee: Step | None = None
    why, lower = "the ladder ended without a break", True
    for s in ordered:
        reasons = broke(s, level)
        if generator_full(s):
            if not reasons:
                knee = s
            pct = float(s["generator_cpu_pct"])
            why = (
                f"a load generator process reached {pct:.0f}% of a core at {_offered(s)}: "
                "the load client may have been the limit"
            )
            break
        if reasons:
            why, lower = f"broke at {_offered(s)}: {'; '.join(reasons)}", False
            if cause := starved(s, level):
                lower = True
                why += (
                    f", while {cause} and it had {float(s.get('server_cpu_pct', 0.0)):.0f}% of "
                    "a core: the machine, not the server, was the limit"
                )
            break
        knee = s
    first = ordered[0] if ordered else {}
    return _record(row, knee or {}, first, why, lower)


def _offered(s: Step) -> str:
    return f"{s.get('subscribers')} x {s.get('rate', 0):g}/s"


def _per_event_us(cpu_s: Any, delivered: Any) -> float:
    if not delivered or cpu_s is None or not math.isfinite(float(cpu_s)):
        return math.nan
    return 1e6 * float(cpu_s) / int(delivered)


def _record(row: str, k: Step, first: Step, why: str, lower: bool) -> KneeRecord:
    nan = math.nan
    gen_pct = float(k.get("generator_cpu_pct", nan))
    gen_1k = float(k.get("generator_cpu_s_per_1k_events", nan))
    return {
        "row": row, "server": str(first.get("server", "")),
        "transport": str(first.get("transport", "")), "search": str(first.get("search", "knee")),
        "step": k.get("step"), "subscribers": int(k.get("subscribers", 0)),
        "rate": float(k.get("rate", 0.0)), "events_per_s": float(k.get("events_per_s", 0.0)),
        "connections": int(k.get("connected") or 0),
        "server_cpu_pct": float(k.get("server_cpu_pct", nan)),
        "wire_bytes_per_s": float(k.get("wire_bytes_per_s", nan)),
        "generator_cpu_pct": gen_pct,
        "server_cpu_us_per_event": _per_event_us(k.get("server_cpu_s"), k.get("delivered")),
        "generator_cpu_us_per_event": 1000 * gen_1k,  # s per 1k events = ms per event
        "latency_ms_p99": float(k.get("latency_ms_p99", nan)),
        "schedule_latency_ms_p99": float(k.get("schedule_latency_ms_p99", nan)),
        "ticker_lag_ms_p99": float(k.get("ticker_lag_ms_p99", nan)),
        "lower_bound": lower, "why": why if k else f"no step held the level: {why}",
    }  # fmt: skip


def knees(steps: Iterable[Step], levels: dict[str, Level]) -> list[KneeRecord]:
    """One knee per row and search (in order of first appearance); ``levels`` by search kind.

    A row label can climb both searches (``pushlab ws`` in the knee and the shootout ladders):
    its steps are kept apart, or one search's break would end the other's climb.
    """
    by_row: dict[tuple[str, str], list[Step]] = {}
    for s in steps:
        if s.get("kind") == "asyncio" and "capacity" in s.get("tags", []) and "row" in s:
            by_row.setdefault((str(s["row"]), str(s.get("search", "knee"))), []).append(s)
    return [find(row, rows, levels.get(kind, Level())) for (row, kind), rows in by_row.items()]
