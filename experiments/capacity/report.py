"""The capacity run's report sections, computed from saved rows only (``summary.json``).

"Where each transport breaks" (each row's knee, in words when it is only a lower bound), the
generators' CPU against the server's, the machine's ceiling (the calibration) with every knee
as a fraction of it, each polling knee against its stack's request floor, and the
websocket-shootout view. The targets are rows of the perf ratios
table (:func:`experiments.ratios.capacity_rows`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from experiments.capacity.plot import LATENCY, SHOOTOUT, knees, steps
from experiments.report_base import Section, f

Cells = Sequence[Mapping[str, Any]]


def is_capacity(cells: Cells) -> bool:
    """Whether a results folder is a capacity run (it has knee rows)."""
    return any(c.get("kind") in ("knee", "calibration") for c in cells)


def _ceiling(cells: Cells, sockets: int) -> Mapping[str, Any] | None:
    """The calibration row whose socket count is nearest ``sockets`` (the knee's connections)."""
    cal = [c for c in cells if c.get("kind") == "calibration"]
    return min(cal, key=lambda c: abs(int(c["sockets"]) - sockets)) if cal else None


def _num(c: Mapping[str, Any], key: str) -> float:
    v = c.get(key)
    return float(v) if isinstance(v, int | float) and v is not None else math.nan


def breaks_section(cells: Cells) -> Section:
    s = Section("Where each transport breaks", figure=LATENCY)
    s.header = ["row", "knee (subs x ev/s)", "delivered ev/s", "connections", "p99 ms",
                "p99 ms from schedule", "server CPU %", "wire bytes/s",
                "generator CPU % (max process)", "server us/event", "knee"]  # fmt: skip
    for row, k in knees(cells, "knee").items():
        s.rows.append([
            row, f"{k['subscribers']} x {f(k['rate'])}" if k.get("step") is not None else "-",
            f(_num(k, "events_per_s")), f(k.get("connections")), f(_num(k, "latency_ms_p99")),
            f(_num(k, "schedule_latency_ms_p99")),
            f(_num(k, "server_cpu_pct")), f(_num(k, "wire_bytes_per_s")),
            f(_num(k, "generator_cpu_pct")), f(_num(k, "server_cpu_us_per_event")),
            "lower bound" if k.get("lower_bound") else "measured",
        ])  # fmt: skip
        s.text.append(f"**{row}**: {_words(k)}")
    s.text.append(
        "Each row climbs subscribers x events/s, open loop (the ticker publishes at the step's "
        "rate whatever the subscribers do; all connected before it starts), on one fresh server "
        "process, until a step breaks the service level: p99 above the limit (from the publish "
        "stamp, and from each event's due time on the ticker's schedule: a ticker that falls "
        "behind publishes the overdue ticks at once, late), less than 99.9% "
        "delivered (seq gaps), less than 95% of the offered events/s carried, or the server at a "
        "full core (>= 90%). The knee is the largest step within "
        "it. Subscribers are counting wires spread over several processes, each on its own "
        "loopback source address."
    )
    return s


def _words(k: Mapping[str, Any]) -> str:
    if k.get("step") is None:
        return f"{k.get('why', '')}."
    head = (
        f"{f(_num(k, 'events_per_s'))} events/s to {k.get('connections')} connections within "
        f"the level (p99 {f(_num(k, 'latency_ms_p99'))} ms, server {f(_num(k, 'server_cpu_pct'))}% "
        "of a core)"
    )
    if k.get("lower_bound"):
        return f"at least {head}. This knee is only a lower bound: {k.get('why')}."
    return f"{head}; {k.get('why')}."


def cost_section(cells: Cells) -> Section:
    """Generator CPU per event against the server's, at each row's knee."""
    s = Section("Load generators against the server (CPU per event)")
    s.header = ["row", "generator us/event", "server us/event", "generator / server"]
    for row, k in knees(cells, "knee").items():
        g, sv = _num(k, "generator_cpu_us_per_event"), _num(k, "server_cpu_us_per_event")
        s.rows.append([row, f(g), f(sv), f(g / sv) if sv else "-"])
    per_step = [c for c in cells if c.get("kind") == "asyncio" and "capacity" in c.get("tags", [])]
    s.text.append(
        "Generator CPU is the sum over all generator processes; per step it is in summary.json "
        f"(`generator_cpu_pct_each`, {len(per_step)} steps). A ratio above 1 means the load side "
        "needs more CPU per event than the server: on a machine of its own the server would "
        "need that many cores for load generation."
    )
    return s


def ceiling_section(cells: Cells) -> Section | None:
    """The calibration and each knee as a fraction of it."""
    cal = [c for c in cells if c.get("kind") == "calibration"]
    if not cal:
        return None
    s = Section("The machine's ceiling (one send per socket per event)")
    s.header = ["row", "connections", "delivered ev/s", "ceiling writes/s per core",
                "% of ceiling", "server us/event", "ceiling us/write", "x ceiling"]  # fmt: skip
    for row, k in knees(cells, "knee").items():
        top = _ceiling(cells, int(k.get("connections") or 0)) or {}
        per_core, us = _num(top, "writes_per_core_s"), _num(top, "cpu_us_per_write")
        ev, sv = _num(k, "events_per_s"), _num(k, "server_cpu_us_per_event")
        s.rows.append([row, f(k.get("connections")), f(ev), f(per_core), f(100 * ev / per_core),
                       f(sv), f(us), f(sv / us)])  # fmt: skip
    for c in cal:
        s.text.append(
            f"{c['sockets']} sockets, {c['frame_bytes']}-byte frames: {f(_num(c, 'writes_per_s'))} "
            f"writes/s, {f(_num(c, 'writes_per_core_s'))} per core-second of the writer, "
            f"{f(_num(c, 'cpu_us_per_write'))} us of CPU per write (reader "
            f"{f(_num(c, 'reader_cpu_s'))} s CPU)."
        )
    s.text.append(
        "The ceiling is a plain loop of `send` calls on ready-made frames, no event loop and no "
        "framework, to as many loopback sockets as a reader process drains: what one core here "
        "does at the least user-space work per delivery when every event is its own write. Each "
        "knee is compared with the calibration cell of its own connection count (the nearest one "
        "measured). A server that writes a late ticker's burst as one write per connection (both "
        "Node's http, which corks a response until the next tick, and pushlab's runs) makes fewer "
        "writes than deliveries, so its CPU per delivery can go below the ceiling's per write; "
        "the ceiling's own CPU per write is measured per socket count and can differ between "
        "counts; why is not broken down here (TCP autocorking, which merges small writes on a "
        "socket whose previous segment is still queued, is one candidate)."
    )
    return s


def _knee_step(cells: Cells, k: Mapping[str, Any]) -> Mapping[str, Any]:
    """The measured step a knee row was derived from."""
    return next((c for c in cells if c.get("kind") == "asyncio" and c.get("row") == k.get("row")
                 and c.get("search") == k.get("search") and c.get("step") == k.get("step")),
                {})  # fmt: skip


def floor_section(cells: Cells) -> Section | None:
    """Each polling knee against the request floor of the stack it ran on."""
    floors = {str(c["server"]): c for c in cells if c.get("kind") == "request-floor"}
    if not floors:
        return None
    s = Section("The request floor (a fixed answer per request)")
    s.header = ["row", "delivered ev/s", "requests / event", "server us/request",
                "floor us/answer", "x floor", "floor's ev/s at 1 event per answer, 90% of a core",
                "x knee of pushlab sse"]  # fmt: skip
    marks = knees(cells, "knee")
    sse = _num(marks.get("pushlab sse", {}), "events_per_s")
    for row, k in marks.items():
        top = floors.get(str(k.get("server")))
        if k.get("transport") not in ("poll", "long-poll") or top is None or k.get("step") is None:
            continue
        per_event = _num(_knee_step(cells, k), "requests_per_event")
        per_request = _num(k, "server_cpu_us_per_event") / per_event
        us = _num(top, "server_us_per_answer")
        bound = 0.9e6 / us
        s.rows.append([row, f(_num(k, "events_per_s")), f(per_event), f(per_request), f(us),
                       f(per_request / us), f(bound), f(bound / sse)])  # fmt: skip
    for server, c in floors.items():
        s.text.append(
            f"{server}: {f(_num(c, 'answers_per_s'))} answers/s on {c['connections']} keep-alive "
            f"connections, server {f(_num(c, 'server_cpu_pct'))}% of a core: "
            f"{f(_num(c, 'server_us_per_answer'))} us of server CPU per answer "
            f"({c['answer_bytes']}-byte answers; driver {f(_num(c, 'driver_us_per_answer'))} us "
            f"per answer, {f(_num(c, 'driver_cpu_pct'))}% of a core)."
        )
    s.text.append(
        "Polling pays per request, not per write, so the send-loop ceiling does not bound it. The "
        "floor is the same server stack answering every request at once with a fixed one-event "
        "poll answer (python: uvicorn with pushlab's config around a bare ASGI callable; node: "
        "`node:http`), driven closed loop by one process on its own loopback source address. A "
        "handler on that stack costs at least the floor per request, so at one event per answer "
        "its knee cannot pass the floor's events/s within 90% of a core: only answers carrying "
        "several events (a poll cycle longer than the interval between events) go beyond."
    )
    return s


def shootout_section(cells: Cells) -> Section | None:
    """Clients at which broadcast p95 crosses 500 ms (hashrocket websocket-shootout)."""
    by_row = steps(cells, "shootout")
    if not by_row:
        return None
    s = Section("Clients until broadcast p95 crosses 500 ms (websocket-shootout rule)",
                figure=SHOOTOUT)  # fmt: skip
    s.header = ["row", "largest clients within", "p95 ms there", "left the level at", "why"]
    marks = knees(cells, "shootout")
    for row, rs in by_row.items():
        k = marks.get(row, {})
        held = [c for c in rs if not c.get("broke")]
        last = held[-1] if held else {}
        crossed = next((c for c in rs if c.get("broke")), None)
        s.rows.append([
            row, f(last.get("subscribers")), f(_num(last, "latency_ms_p95")),
            f(crossed["subscribers"]) if crossed else "not reached",
            str(k.get("why", "")),
        ])  # fmt: skip
    s.text.append(
        "One broadcast feed at a fixed rate to ever more connected clients; the figure is the "
        "number of clients at which p95 from publisher stamp to read passes 500 ms, the rule of "
        "hashrocket's websocket-shootout. The events are stamped when published, so a step that "
        "carries less than 95% of the offered events/s (the publisher fell behind) also ends "
        "the climb: its p95 would hide the delay."
    )
    return s


def steps_section(cells: Cells) -> Section:
    """Every measured step: offered and delivered load, p99, server and generator CPU."""
    s = Section("Every step")
    s.header = ["row", "search", "subs x ev/s", "offered ev/s", "delivered ev/s", "p99 ms",
                "p95 ms", "ticker lag p99 ms", "p99 ms from schedule", "server CPU %",
                "server waited %", "generator CPU % (each process)", "machine CPU %",
                "outside the level"]  # fmt: skip
    for c in cells:
        if c.get("kind") != "asyncio" or "capacity" not in c.get("tags", []):
            continue
        each = " ".join(f"{p:.0f}" for p in c.get("generator_cpu_pct_each") or [])
        s.rows.append([
            str(c.get("row")), str(c.get("search")), f"{c['subscribers']} x {f(c['rate'])}",
            f(_num(c, "offered_per_s")), f(_num(c, "events_per_s")),
            f(_num(c, "latency_ms_p99")), f(_num(c, "latency_ms_p95")),
            f(_num(c, "ticker_lag_ms_p99")), f(_num(c, "schedule_latency_ms_p99")),
            f(_num(c, "server_cpu_pct")), f(_num(c, "server_wait_pct")), each or "-",
            f(_num(c, "machine_cpu_pct")),
            "; ".join(c.get("broke") or []) or "-",
        ])  # fmt: skip
    return s


def sections(cells: Cells) -> list[Section]:
    """The capacity sections, in order (the ratios table is added by the caller)."""
    out = [breaks_section(cells), cost_section(cells)]
    extra = (ceiling_section(cells), floor_section(cells), shootout_section(cells))
    out += [s for s in extra if s is not None]
    return [*out, steps_section(cells)]
