"""``pushlab bench --profile perf`` in its tiny form, and the ratio rules on hand-made cells."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from experiments import ratios
from experiments.matrix import PERF_GRANIAN_ROWS, PERF_ROWS, profile
from experiments.report import render
from experiments.results import load
from experiments.run import run_bench, server_problem
from tests.support import IN_CI


def _cell(server: str, transport: str, tag: str, **figures: object) -> dict[str, object]:
    return {"status": "ok", "tags": ["perf", tag], "server": server, "transport": transport,
            "rate": 100.0, "lost": 0, "generator_bound": False, **figures}  # fmt: skip


def test_perf_profile_has_exactly_the_issue_cells():
    """Paced cells at 200 x 100 and 200 x 200, flat-out and 10k idle, each with the Node ws row.

    Granian rows are perf-granian's; SSE subscribers use the lean wire.
    """
    cells = profile("perf")
    paced = {(c.server, c.transport, c.rate) for c in cells if "paced" in c.tags}
    assert paced == {(s, t, r) for s, t in PERF_ROWS for r in (100.0, 200.0)}
    sse = [c for c in cells if c.transport == "sse" and "flat" not in c.tags]
    assert all(c.client_options().get("wire") == "stream" for c in sse)
    assert all(c.subscribers == 200 for c in cells if c.kind == "asyncio")
    assert {(c.server, c.transport) for c in cells if "flat" in c.tags} == set(PERF_ROWS[:3])
    idle = [c for c in cells if c.kind == "idle"]
    assert {c.subscribers for c in idle} == {10_000}
    assert {(c.server, c.transport) for c in idle} == set(PERF_ROWS[:3])
    # Paced cells keep each load process at <= 10k events/s.
    assert all(c.subscribers * c.rate / c.generators <= 10_000 for c in cells if "paced" in c.tags)
    # Long polling's client pays per request: four processes at both rates.
    assert {c.generators for c in cells if c.transport == "long-poll"} == {4}
    # Flat out: four processes, and every subscriber connected before the ticker starts.
    assert {(c.generators, c.preconnect) for c in cells if "flat" in c.tags} == {(4, True)}
    # Flat out the generators count per read (experiments/countwire.py): with the lab's clients
    # they needed 3-4x the server's CPU per event, and no server here could saturate.
    assert {c.client_options().get("wire") for c in cells if "flat" in c.tags} == {"count"}
    # Paced too: a 200 x 200 feed running during the connects timed them out on a slow VM.
    assert all(c.preconnect for c in cells if "paced" in c.tags)


def test_wire_profile_compares_the_counting_wire_with_the_lab_clients():
    """perf-wire: each push row paced, lab client vs counting wire (with and without its hold)."""
    cells = profile("perf-wire")
    rows = {(c.server, c.transport) for c in cells}
    assert rows == set(PERF_ROWS[:3])
    for server, t in rows:
        mine = [(c.rate, c.client_options().get("wire"), "hold_ms" in c.client_options())
                for c in cells if (c.server, c.transport) == (server, t)]  # fmt: skip
        lab = "stream" if t == "sse" else None
        assert sorted(mine, key=str) == sorted(
            [(100.0, lab, False), (100.0, "count", False), (100.0, "count", True),
             (500.0, "count", False), (500.0, "count", True)], key=str)  # fmt: skip
    assert not any("perf" in c.tags for c in cells)  # not part of the ratios


def test_granian_profile_is_the_app_under_granian_against_node_ws():
    """perf-granian: WS and SSE paced and idle rows on Granian, with Node ws (and uvicorn) rows."""
    cells = profile("perf-granian")
    assert {(c.server, c.transport, c.rate) for c in cells if "paced" in c.tags} == {
        (s, t, r) for s, t in (*PERF_ROWS[:3], *PERF_GRANIAN_ROWS) for r in (100.0, 200.0)
    }
    assert {(c.server, c.transport) for c in cells if c.kind == "idle"} == {
        ("node", "ws"),
        *PERF_GRANIAN_ROWS,
    }
    assert all(c.subscribers == 10_000 for c in cells if c.kind == "idle")


def test_ratios_use_the_node_row_and_drop_saturated_cells():
    """Ratios divide by the same run's Node ws figure; a generator-bound cell does not count."""
    cells = [
        _cell("node", "ws", "paced", server_cpu_s_per_1k_events=0.01, latency_ms_p99=10.0),
        _cell("python", "ws", "paced", server_cpu_s_per_1k_events=0.008, latency_ms_p99=12.0),
        _cell("python", "long-poll", "paced", server_cpu_s_per_1k_events=0.03,
              generator_bound=True, generator_cpu_pct=97.0),
        _cell("node", "ws", "flat", events_per_s=1000.0),
        _cell("python", "ws", "flat", events_per_s=1500.0),
        _cell("python", "sse", "idle", memory_per_connection_kb=20.0, idle_connections=10,
              connected=10, subscribers=10),
        _cell("python", "ws", "idle", memory_per_connection_kb=9.0, idle_connections=90,
              connected=50, subscribers=100),
    ]  # fmt: skip
    rows = {(r["figure"], r["transport"]): r for r in ratios.compute(cells)}
    cpu = rows[("CPU s / 1k events", "ws")]
    assert math.isclose(cpu["ratio"], 0.8) and cpu["met"] and cpu["counts"]
    p99 = rows[("p99 latency ms", "ws")]
    assert math.isclose(p99["ratio"], 1.2) and not p99["met"]
    lp = rows[("CPU s / 1k events", "long-poll")]
    assert lp["met"] is False and lp["counts"] is False and "97%" in lp["why_not"]
    assert rows[("flat-out events/s", "ws")]["met"]
    idle = next(
        r for r in rows.values() if r["transport"] == "sse" and r["figure"].startswith("KiB")
    )
    assert idle["met"] is False and idle["counts"]


def _flat(server: str, events: float, cpu_pct: float, **more: object) -> dict[str, object]:
    figures = {"server_bound": cpu_pct >= 90, "preconnected": True, **more}
    return _cell(server, "ws", "flat", events_per_s=events, server_cpu_pct=cpu_pct, **figures)


@pytest.mark.parametrize(
    ("python", "node", "counts", "note"),
    [
        # (events/s, server CPU %) of each side
        ((1500, 95), (1000, 97), True, "both servers saturated"),
        ((1500, 40), (1000, 97), True, "lower bound"),  # the lower bound already meets 1.0
        ((800, 40), (1000, 97), False, "lower bound"),  # might still reach 1.0
        ((800, 95), (1000, 40), True, "upper bound"),  # the upper bound already misses 1.0
        ((1500, 95), (1000, 40), False, "upper bound"),
        ((1500, 40), (1000, 40), False, "neither server saturated"),
    ],
)
def test_flat_row_counts_only_where_a_saturated_server_decides(python, node, counts, note):
    """A server below 90% of a core was not at its limit: its figure only bounds its capacity."""
    cells = [_flat("node", *node), _flat("python", *python)]
    (row,) = ratios.compute(cells)
    assert math.isclose(row["ratio"], python[0] / node[0])
    assert row["counts"] is counts and note in row["note"], row
    assert f"{python[1]}%" in row["note"] and f"{node[1]}%" in row["note"]


def test_flat_row_without_preconnected_subscribers_does_not_count():
    """A ticker that ran flat out while subscribers were still connecting voids the row."""
    cells = [_flat("node", 1000, 97), _flat("python", 1500, 95, preconnected=False)]
    (row,) = ratios.compute(cells)
    assert not row["counts"] and "before every subscriber was connected" in row["why_not"]


def test_flat_row_says_when_the_ticker_was_the_limit():
    """A cell that delivered all the ticker asked (subscribers x rate) did not find a limit."""
    cells = [_flat("node", 1000, 97, subscribers=20), _flat("python", 1990, 60, subscribers=20)]
    (row,) = ratios.compute(cells)
    assert "python ws delivered what the ticker asked" in row["note"]
    assert "node ws delivered" not in row["note"]


@pytest.mark.load
def test_tiny_perf_run_writes_the_ratios_table(tmp_path: Path):
    """The tiny perf profile runs every cell and its report and ratios.json hold every target."""
    path = run_bench("perf-tiny", tmp_path, progress=False)
    render(path)
    _, cells = load(path)
    missing = {kind: server_problem(kind) for kind in ("node", "python", "granian")}
    node_missing = missing["node"]
    if any(missing.values()) and IN_CI:
        pytest.fail(str(missing))
    assert {c["server"] for c in cells} == {"node", "python", "granian"}
    for c in cells:
        if missing[c["server"]]:
            assert c["status"] == "skipped"
            continue
        assert c["status"] == "ok", (c["cell"], c.get("reason"))
        if c["kind"] == "asyncio":
            assert c["delivered"] > 0 and c["lost"] == 0 and c["duplicates"] == 0, c["cell"]
            assert c["generator_cpu_pct"] > 0 and c["server_cpu_s"] > 0, c["cell"]
            assert len(c["generator_cpu_pct_each"]) == c["generators"]
            assert max(c["generator_cpu_pct_each"]) == c["generator_cpu_pct"]
        if "flat" in c["tags"]:
            # Every subscriber connected while the ticker was paused, so each one's first event
            # is the one after the pause: the first the resumed ticker published.
            paused = c["ticker_paused_at"]
            assert c["connected"] == c["subscribers"], c["cell"]
            assert c["start_cursor_min"] == c["start_cursor_max"] == paused, c["cell"]
            assert c["first_seq_min"] == c["first_seq_max"] == paused + 1, c["cell"]
            assert c["preconnected"] is True
        if c["kind"] == "idle":
            assert c["idle_connections"] == c["subscribers"], c["cell"]
    saved = json.loads((path / "ratios.json").read_text())["ratios"]
    figures = {(r["figure"].split(" (")[0], r["server"], r["transport"]) for r in saved}
    py = [("CPU s / 1k events", t) for t in ("ws", "sse", "long-poll")]
    py += [("p99 latency ms", "ws"), ("flat-out events/s", "sse"), ("KiB / idle conn", "ws")]
    assert {(fig, "python", t) for fig, t in py} <= figures
    granian = [(fig, t) for fig, t in py if not fig.startswith("flat") and t != "long-poll"]
    assert {(fig, "granian", t) for fig, t in granian} <= figures
    if not node_missing:
        cpu = next(
            r for r in saved if (r["figure"], r["server"], r["transport"])
            == ("CPU s / 1k events", "python", "ws")
        )  # fmt: skip
        # Both servers delivered events, so both spent CPU, and at the CPU clock's ns
        # resolution (experiments/cpuclock.py) even a tiny cell's is more than 0.
        assert cpu["python"] > 0 and cpu["node_ws"] > 0, cpu
        assert cpu["ratio"] == pytest.approx(cpu["python"] / cpu["node_ws"])
    report = (path / "report.md").read_text()
    assert "Against the Node ws row" in report
    assert (path / "ratios.csv").read_text().startswith("figure,")


def test_sse_rows_for_both_implementations_with_their_own_labels():
    """perf runs SSE on sse-starlette and on pushlab's response; ratios name the variant."""
    cells = profile("perf")
    sse = {(c.tags[1], c.server_env.get("PUSHLAB_SSE_IMPL")) for c in cells if c.transport == "sse"}
    assert {v for _, v in sse} == {None, "pushlab"}
    assert {tag for tag, _ in sse} == {"paced", "flat", "idle"}
    row = {"server": "python", "transport": "sse", "server_env": {"PUSHLAB_SSE_IMPL": "pushlab"}}
    assert ratios.server_label(row) == "python sse_impl=pushlab"
    assert ratios.server_label({"server": "node", "transport": "ws"}) == "node"
