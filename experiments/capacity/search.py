"""The capacity runner: each row's steps against one fresh server process, until the level breaks.

A row gets its own server (the bench's launcher, :func:`experiments.run.server`); each step is a
bench cell run by the bench's cell runner (:func:`experiments.cells.asyncio_cell`: preconnected
counting subscribers, one shared window for latency, bytes and CPU). The row stops at the first
step outside the service level, or at the first step on which a load generator process reached
~90% of a core (from there on the figures would be the client's). Every step is written to
``summary.json`` as soon as it finishes; then the calibration and each row's knee, as rows of
their own (``kind`` ``calibration`` and ``knee``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from experiments import cells as run_cells, run, sockstats
from experiments.capacity import calibration, knee, request_floor
from experiments.capacity.cells import Level, Plan, Row, StepRecord, plan as make_plan, step_cell
from experiments.results import ResultsDir


def levels(p99_ms: float) -> dict[str, Level]:
    """The knee's level (p99 limit from the flag) and the shootout's (p95 500 ms, no CPU rule)."""
    from experiments.capacity.cells import SHOOTOUT_P95_MS

    return {
        "knee": Level(p99_ms=p99_ms),
        "shootout": Level(p95_ms=SHOOTOUT_P95_MS, server_pct=math.inf),
    }


def _enrich(row: Row, index: int, cell: dict[str, Any], level: Level) -> dict[str, Any]:
    extra: StepRecord = {
        "row": row.label,
        "search": row.search,
        "step": index,
        "offered_per_s": cell["subscribers"] * cell["rate"],
        "delivered_pct": knee.delivered_pct(cell),
        "carried_pct": knee.carried_pct(cell),
        "latency_ms_p95": knee.p95_ms(cell),
    }
    wire = cell.get("wire_bytes_per_event")
    if isinstance(wire, float) and cell.get("events_per_s"):
        extra["wire_bytes_per_s"] = wire * float(cell["events_per_s"])
    out = {**cell, **extra}
    out["broke"] = knee.broke(out, level)
    out["within"] = not out["broke"]
    return out


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def search_row(p: Plan, row: Row, level: Level, rd: ResultsDir, servers: list[Any]) -> None:
    """Run ``row``'s ladder on one server until a step breaks the level or a generator is full."""
    steps = p.steps(row)
    first = step_cell(p, row, steps[0])
    problem = run.server_problem(row.server)
    if problem:
        rd.add_cell({**first.params(), "row": row.label, "search": row.search, "step": 0,
                     "status": "skipped", "reason": problem})  # fmt: skip
        _say(f"{row.label}: skipped ({problem})")
        return
    log = rd.raw(f"server{len(servers)}.log")
    with run.server(first, log) as (target, info):
        servers.append(info)
        for i, step in enumerate(steps):
            cell = step_cell(p, row, step)
            _say(f"{row.label} [{row.search}] step {i}: {step.subscribers} x {step.rate:g}/s")
            began = time.perf_counter()
            try:
                figures = run_cells.asyncio_cell(cell, target, rd.path / "raw")
                figures["cell_wall_s"] = time.perf_counter() - began
                res = {**cell.params(), "server_index": len(servers) - 1, "status": "ok",
                       **figures}  # fmt: skip
            except Exception as exc:  # a failed step is a broken level, not a failed run
                traceback.print_exc(file=sys.stderr)
                res = {**cell.params(), "status": "failed",
                       "reason": f"{type(exc).__name__}: {exc}"}  # fmt: skip
            rec = _enrich(row, i, res, level)
            rd.add_cell(rec)
            _say(f"      p99 {rec.get('latency_ms_p99', math.nan):.1f} ms, "
                 f"{rec.get('events_per_s', 0):.0f} ev/s, server "
                 f"{rec.get('server_cpu_pct', math.nan):.0f}%, generator "
                 f"{rec.get('generator_cpu_pct', math.nan):.0f}% "
                 f"{'; '.join(rec['broke'])}")  # fmt: skip
            if rec["broke"] or knee.generator_full(rec):
                break


def run_capacity(
    name: str = "capacity",
    root: Path | str = "results",
    *,
    p99_ms: float = 100.0,
    plan: Plan | None = None,
) -> Path:
    """Run a capacity plan into a new results folder; returns its path."""
    p = plan or make_plan(name)
    if not sockstats.available():
        raise RuntimeError("`ss` (iproute2) is needed to count bytes on the wire")
    lv = levels(p99_ms)
    rd = ResultsDir.create(p.name, root)
    params = {"profile": p.name, "plan": dataclasses.asdict(p),
              "levels": {k: v.as_dict() for k, v in lv.items()}}  # fmt: skip
    servers: list[Any] = []
    started = time.time()
    rd.write_meta(params, servers=servers, started_at=started)
    interrupted = False
    try:
        for row in p.rows:
            search_row(p, row, lv[row.search], rd, servers)
        # The same number of sockets as each knee holds, so every knee has its own ceiling.
        at_knees = {k["connections"] for k in knee.knees(rd.cells, lv) if k["connections"]}
        for n in sorted(at_knees | set(p.calibration)):
            _say(f"calibration: {n} sockets, one send per socket per event")
            rec = calibration.measure(n, p.calibration_s)
            rd.add_cell({"kind": "calibration", "tags": ["capacity", "calibration"],
                         "status": "ok", "generator": "send loop", **rec})  # fmt: skip
        for server, n in _floor_cells(p, rd.cells, lv).items():
            _say(f"request floor: {server}, {n} connections, a fixed answer per request")
            floor = request_floor.measure(server, n, p.calibration_s)
            rd.add_cell({"kind": "request-floor", "tags": ["capacity", "request-floor"],
                         "status": "ok", "generator": "closed loop", **floor})  # fmt: skip
    except KeyboardInterrupt:
        interrupted = True
        _say("interrupted: finished steps are kept")
    finally:
        # The knees, as rows of their own: reports, ratios and README tables read summary.json.
        _add_knees(rd, lv)
        rd.write_meta(params, servers=servers, started_at=started, ended_at=time.time(),
                      interrupted=interrupted)  # fmt: skip
    return rd.path


POLLING = ("poll", "long-poll")


def _floor_cells(p: Plan, cells: list[Any], lv: dict[str, Level]) -> dict[str, int]:
    """Server stack -> connections for its request floor: one per server with a polling row, on
    as many connections as its largest polling knee held (the first step's when none)."""
    polled = {row.server for row in p.rows if row.transport in POLLING}
    # A server the run could not start (run.server_problem: Node missing) has no floor either.
    held = {s: p.ladder[0].subscribers for s in sorted(polled) if not run.server_problem(s)}
    for k in knee.knees(cells, lv):
        if k["transport"] in POLLING and k["server"] in held:
            held[k["server"]] = max(held[k["server"]], int(k["connections"] or 0))
    return held


def _add_knees(rd: ResultsDir, lv: dict[str, Level]) -> None:
    for k in knee.knees(rd.cells, lv):
        rd.add_cell({"kind": "knee", "tags": ["capacity", "knee"], "status": "derived", **k})


def rederive(folder: Path | str) -> None:
    """Derive a saved run's knee rows again from its measured steps and saved levels.

    Knees are computed from summary.json alone; after a fix to that rule a run need not be
    measured again (``python -m experiments.capacity.search DIR``, then ``pushlab plot DIR``).
    """
    path = Path(folder)
    meta = json.loads((path / "meta.json").read_text())
    lv = {k: Level(**v) for k, v in meta["params"]["levels"].items()}
    cells = json.loads((path / "summary.json").read_text())["cells"]
    rd = ResultsDir(path)
    for c in cells:
        if c.get("kind") != "knee":
            rd.add_cell(c)
    _add_knees(rd, lv)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        rederive(arg)
