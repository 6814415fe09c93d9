"""The capacity search: the tiny plan end to end on real servers, and the knee rules."""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from experiments import ratios
from experiments.capacity import knee, request_floor
from experiments.capacity.cells import HOLD_MS, Level, Step, client, generators, plan
from experiments.capacity.cli import add_arguments, selected
from experiments.capacity.search import run_capacity
from experiments.countwire import Tally, Window, auto_source, open_counter, result
from experiments.matrix import NODE_TRANSPORTS
from experiments.report import render
from experiments.results import load
from tests.support import async_wait_until, require


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``capacity-tiny`` run, rendered."""
    path = run_capacity("capacity-tiny", tmp_path_factory.mktemp("results"))
    render(path)
    return path


@pytest.mark.load
def test_every_row_climbs_and_gets_a_knee(tiny):
    """Each row measured steps without loss on several generators, and has a knee or a bound."""
    meta, cells = load(tiny)
    steps = [c for c in cells if c["kind"] == "asyncio"]
    rows = {r.label for r in plan("capacity-tiny").rows}
    assert {c["row"] for c in steps} == rows, [c.get("reason") for c in steps]
    for c in steps:
        assert c["status"] == "ok", c.get("reason")
        assert c["delivered"] > 0 and c["lost"] == 0 and not c["errors"], c["row"]
        assert c["generator_processes"] >= 2 and c["connected"] == c["subscribers"]
        assert c["preconnected"] is True, c["row"]
        assert 0 <= c["server_wait_pct"] < math.inf, c["row"]  # read from the server's schedstat
        # The witness subscribers' stamps: the ticker against its schedule.
        assert c["ticker_lag_ms_p50"] >= 0 and c["schedule_latency_ms_p99"] > 0, c["row"]
    polls = [c for c in steps if c["transport"] in ("poll", "long-poll")]
    assert polls and all(c["requests"] > 0 for c in polls)
    knees = [c for c in cells if c["kind"] == "knee"]
    assert {k["row"] for k in knees} == rows
    for k in knees:
        # Found (the level broke) or flagged as a lower bound, with the reason in words.
        assert k["lower_bound"] or "broke at" in k["why"], k
        assert k["why"]
    cal = [c for c in cells if c["kind"] == "calibration"]
    assert cal and all(c["writes"] > 0 and c["cpu_us_per_write"] > 0 for c in cal)
    # Every knee has a ceiling measured on as many sockets as it held.
    # (A row whose first step already broke the level, as short polling's may on a busy
    # machine, has no knee and no connections.)
    held = {k["connections"] for k in knees if k["step"] is not None}
    assert held <= {c["sockets"] for c in cal}
    # A request floor for each stack with a polling row, on as many connections as its largest
    # polling knee held.
    floors = {c["server"]: c for c in cells if c["kind"] == "request-floor"}
    assert set(floors) == {"python", "node"}
    for server, c in floors.items():
        polled = [k["connections"] for k in knees
                  if k["server"] == server and k["transport"] in ("poll", "long-poll")]  # fmt: skip
        assert c["connections"] == max([*polled, plan("capacity-tiny").ladder[0].subscribers])
        assert c["answers"] > 0 and c["server_us_per_answer"] > 0, c
    assert meta["params"]["levels"]["knee"]["p99_ms"] == 100.0
    assert meta["interrupted"] is False


@pytest.mark.load
def test_report_figures_and_target_rows_are_written(tiny):
    """The report has the breaks section and both figures; the ws target row is in ratios."""
    report = (tiny / "report.md").read_text()
    assert "## Where each transport breaks" in report
    assert "## The machine's ceiling" in report
    floor = report.split("## The request floor", 1)[1].split("\n## ", 1)[0]
    assert "\npython: " in floor and "\nnode: " in floor, floor  # each stack's floor, in words
    # Every polling knee against its floor (a row whose first step already broke, as short
    # polling's may on a busy machine, has no knee to compare).
    _, cells = load(tiny)
    polled = [k["row"] for k in cells if k["kind"] == "knee" and k["step"] is not None
              and k["transport"] in ("poll", "long-poll")]  # fmt: skip
    assert "pushlab long-poll" in polled or "node long-poll" in polled
    for row in polled:
        assert f"| {row} |" in floor, floor
    for name in ("capacity_latency.png", "capacity_shootout.png"):
        assert (tiny / "figures" / name).stat().st_size > 1000
        assert f"figures/{name}" in report
    rows = json.loads((tiny / "ratios.json").read_text())["ratios"]
    ws = [r for r in rows if r["figure"] == "knee events/s" and r["transport"] == "ws"]
    assert len(ws) == 1 and ws[0]["node_ws"] is not None  # the node ws knee was found


@pytest.mark.load
def test_stream_row_is_counted_like_sse(tiny):
    """The /stream row's steps are counted per read with a hold (as SSE), bytes on the wire
    measured, and its knee is in the report's breaks table."""
    _, cells = load(tiny)
    steps = [c for c in cells if c["kind"] == "asyncio" and c["transport"] == "stream"]
    assert steps and all(c["client"]["hold_ms"] == HOLD_MS for c in steps)
    assert all(c["wire_bytes_per_event"] > 64 for c in steps)  # 64-byte payload + its line
    assert "| pushlab stream |" in (tiny / "report.md").read_text()


def test_every_transport_has_a_capacity_row():
    """The full plan has a pushlab knee row per transport of the contract (SSE twice), and Node
    rows only for the transports Node serves."""
    rows = [r for r in plan("capacity").rows if r.search == "knee"]
    assert [r.transport for r in rows if r.server == "python"] == [
        "poll", "long-poll", "sse", "sse", "ws", "stream",
    ]  # fmt: skip
    assert {r.transport for r in rows if r.server == "node"} == set(NODE_TRANSPORTS)
    assert "stream" in {r.transport for r in plan("capacity-tiny").rows}
    assert client("stream") == client("sse") and "wait_s" not in client("stream")


def test_cli_keeps_only_the_chosen_transports():
    """``pushlab capacity --transport stream`` runs the stream rows alone; a transport without a
    row in the profile is an error, not an empty run."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    p = selected(parser.parse_args(["--transport", "stream"]))
    assert [r.label for r in p.rows] == ["pushlab stream"]
    assert selected(parser.parse_args([])).rows == plan("capacity").rows
    with pytest.raises(SystemExit, match="no row"):
        selected(parser.parse_args(["--profile", "capacity-tiny", "--transport", "sse"]))


def _step(i: int, **kw: Any) -> dict[str, Any]:
    base = {"kind": "asyncio", "tags": ["capacity", "knee"], "row": "pushlab ws", "step": i,
            "status": "ok", "server": "python", "transport": "ws", "subscribers": 10 * (i + 1),
            "rate": 10.0, "events_per_s": 100.0 * (i + 1), "delivered": 1000, "lost": 0,
            "latency_ms_p99": 5.0, "server_cpu_pct": 20.0, "generator_cpu_pct": 10.0,
            "server_cpu_s": 0.1, "generator_cpu_s_per_1k_events": 0.05,
            "connected": 10}  # fmt: skip
    return base | kw


def test_knee_is_the_last_step_before_the_level_breaks():
    """p99 over the limit on step 2: the knee is step 1, measured, and the reason is given."""
    k = knee.find("pushlab ws", [_step(0), _step(1), _step(2, latency_ms_p99=250.0)], Level())
    assert k["step"] == 1 and not k["lower_bound"]
    assert "p99 250 ms > 100 ms" in k["why"]
    assert k["server_cpu_us_per_event"] == pytest.approx(100.0)
    assert k["generator_cpu_us_per_event"] == pytest.approx(50.0)


def test_a_row_in_both_searches_gets_a_knee_in_each():
    """The shootout's steps of a row do not end the same row's knee climb (and the reverse)."""
    climb = [_step(i, search="knee") for i in range(4)]
    shootout = [
        _step(0, search="shootout", latency_cdf=[[0.95, 5.0]]),
        _step(1, search="shootout", latency_cdf=[[0.95, 900.0]]),
    ]
    levels = {"knee": Level(), "shootout": Level(p95_ms=500.0, server_pct=math.inf)}
    found = {k["search"]: k for k in knee.knees(shootout + climb, levels)}
    assert found["knee"]["step"] == 3 and found["shootout"]["step"] == 0


@pytest.mark.parametrize(
    ("bad", "words"),
    [({"lost": 2}, "delivered 99.80% < 99.9%"), ({"server_cpu_pct": 95.0}, "server at 95%"),
     ({"status": "failed", "reason": "only 3 of 10"}, "failed: only 3 of 10"),
     ({"events_per_s": 150.0}, "carried 75% of the offered")],
)  # fmt: skip
def test_each_rule_of_the_level_breaks_a_step(bad, words):
    """Lost events, falling behind the offered rate, a full core, a failed step: each ends it."""
    k = knee.find("pushlab ws", [_step(0), _step(1, **bad)], Level())
    assert k["step"] == 0 and words in k["why"]


def test_a_full_generator_makes_the_knee_a_lower_bound():
    """A full generator, an unbroken ladder, or a starved server: the knee is only a bound."""
    k = knee.find("pushlab ws", [_step(0), _step(1, generator_cpu_pct=93.0)], Level())
    assert k["step"] == 1 and k["lower_bound"] and "93% of a core" in k["why"]
    k = knee.find("pushlab ws", [_step(0)], Level())
    assert k["lower_bound"] and "ladder ended" in k["why"]
    starved = _step(1, latency_ms_p99=300.0, machine_cpu_pct=99.0, server_cpu_pct=30.0)
    k = knee.find("pushlab ws", [_step(0), starved], Level())
    assert k["step"] == 0 and k["lower_bound"] and "the machine, not the server" in k["why"]
    k = knee.find("pushlab ws", [_step(0), starved | {"server_cpu_pct": 97.0}], Level())
    assert not k["lower_bound"]  # the server had its core: its own limit
    # Running 62% and runnable-waiting 38% of the window: it never idled, yet had 62% of a core.
    waited = starved | {"machine_cpu_pct": 80.0, "server_cpu_pct": 62.0, "server_wait_pct": 38.0}
    k = knee.find("pushlab ws", [_step(0), waited], Level())
    assert k["lower_bound"] and "waited runnable for a CPU 38%" in k["why"]
    k = knee.find("pushlab ws", [_step(0), waited | {"server_wait_pct": 20.0}], Level())
    assert not k["lower_bound"]  # it idled 18% of the window: the break is its own
    k = knee.find("pushlab ws", [_step(0, latency_ms_p99=math.nan)], Level())
    assert k["step"] is None and not k["lower_bound"]


def _knee(row: str, server: str, events: float, lower: bool, why: str) -> dict[str, Any]:
    return {"kind": "knee", "search": "knee", "row": row, "server": server, "transport": "ws",
            "events_per_s": events, "rate": 10.0, "lower_bound": lower, "why": why}  # fmt: skip


@pytest.mark.parametrize(
    ("mine", "node", "counts", "met", "why"),
    [((900.0, False), (1000.0, False), True, False, ""),
     ((900.0, True), (1000.0, True), False, False, "inconclusive: generator-bound"),
     ((1200.0, True), (1000.0, False), True, True, ""),
     ((900.0, True), (1000.0, False), False, False, "inconclusive: pushlab ws knee"),
     ((1200.0, False), (1000.0, True), False, True, "inconclusive: node ws knee")],
)  # fmt: skip
def test_knee_target_verdicts_respect_lower_bounds(mine, node, counts, met, why):
    """A lower bound decides a target one way only; two bounds decide nothing."""
    gen = "a load generator process reached 95% of a core"
    cells = [_knee("pushlab ws", "python", mine[0], mine[1], gen),
             _knee("node ws", "node", node[0], node[1], gen)]  # fmt: skip
    (row,) = ratios.capacity_rows(cells)
    assert (row["counts"], row["met"]) == (counts, met)
    assert row["why_not"].startswith(why)


def test_generators_split_load_and_sockets_and_sources_differ():
    """Big steps get more processes (fd limit, CPU budget); each process its own 127.4x source."""
    assert generators("ws", Step(50, 20)) == 2
    assert generators("ws", Step(16000, 20)) == 6
    assert generators("poll", Step(4000, 1)) > 2  # polls cost per request, not per event
    addrs = {auto_source(pid) for pid in range(1000, 1400)}
    assert len(addrs) == 400
    for a in addrs:
        ip = ipaddress.ip_address(a)
        assert ip.is_loopback and 40 <= ip.packed[1] <= 49 and ip.packed[3] not in (0, 255)


@pytest.mark.parametrize(("transport", "client"), [
    ("poll", {"interval_s": 0.02}), ("long-poll", {"wait_s": 0.1}),
    ("long-poll", {"wait_s": 0.1, "source": "auto"}),
])  # fmt: skip
async def test_pollers_count_every_event_on_one_keep_alive_connection(
    transport: str, client: dict[str, Any], live: Any
):
    """Real uvicorn: 200 events in batches, quiet spells (long polls answer 204), one socket."""
    win = Window(0)
    win.t0, win.t1, win.open = 0, 2**62, True
    tallies = [Tally() for _ in range(3)]
    counters = [await open_counter(transport, live.url, "t", t, win, client) for t in tallies]
    await async_wait_until(lambda: all(t.cursor is not None for t in tallies), 10, "ready")
    async with httpx.AsyncClient(trust_env=False) as http:

        async def publish_100() -> None:
            for i in range(100):
                r = await http.post(f"{live.url}/publish", params={"topic": "t"}, json={"i": i})
                assert r.status_code == 200, r.text

        await publish_100()
        # Quiet for longer than a long poll's wait: its 204 carries the cursor on.
        quiet = sum(t.empty for t in tallies) + 3
        await async_wait_until(lambda: sum(t.empty for t in tallies) > quiet, 10, "empty answers")
        await publish_100()
    await async_wait_until(lambda: all(t.last_seq == 200 for t in tallies), 10, "all events")
    for counter in counters:
        counter.close()
    out = result(tallies, win)
    assert out["delivered"] == 600 and out["lost"] == 0 and out["duplicates"] == 0
    assert out["requests"] >= 6 and not out["errors"]
    assert all(t.connections >= 2 for t in tallies)  # several answers on its one connection
    assert len(win.responses) == out["requests"]
    if client.get("source") == "auto":
        assert all(ipaddress.ip_address(c.transport.get_extra_info("sockname")[0]).packed[1] >= 40
                   for c in counters if c.transport is not None)  # fmt: skip


@pytest.mark.parametrize("server", ["python", "node"])
def test_request_floor_counts_whole_answers_and_the_servers_cpu(server):
    """The driver keeps every connection busy with one request in flight and reads the server's
    CPU over its own window: whole answers only, each the fixed body under the stack's head."""
    if server == "node":
        require("node", "the Node.js request floor")
    r = request_floor.measure(server, 20, 0.3)
    assert r["answers"] > 20 and r["server_cpu_s"] > 0 and r["driver_cpu_s"] > 0, r
    assert r["answer_bytes"] > len(request_floor.BODY) + len("HTTP/1.1 200 OK\r\n\r\n")
    assert r["server_us_per_answer"] == pytest.approx(1e6 * r["server_cpu_s"] / r["answers"])
