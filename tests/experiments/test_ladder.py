"""The connection ladder and the reconnect storm, in short form: the mechanics, not the figures."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

from experiments.baseline import node_available
from experiments.ladder.cells import HELD_TRANSPORTS, Rung, profile
from experiments.ladder.holder import Holder
from experiments.ladder.run import Params, measure, sources
from experiments.records import LadderCell, StormCell, check
from experiments.storm import STORM_TRANSPORTS, storm_cell
from feed.wire.contract import TRANSPORTS
from tests.support import IN_CI, require

N = 200
# Heartbeats every second so a 1.5 s idle window holds one of each.
SHORT = Params(idle_s=1.5, ws_ping_interval_s=1.0, keepalive_s=1.0, settle_s=0.3)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The servers are children that read PUSHLAB_* and refuse the suite's own variables."""
    monkeypatch.delenv("PUSHLAB_TEST_MS", raising=False)
    monkeypatch.delenv("PUSHLAB_TEST_FULL", raising=False)


def _node_ok() -> None:
    require("node", "the Node.js baseline row")
    ok, why = node_available()
    if not ok:
        (pytest.fail if IN_CI else pytest.skip)(why)


def _held(cell: dict[str, object]) -> None:
    check(LadderCell, cell, str(cell["name"]))  # every key declared: the saved run will load
    assert cell["status"] == "ok", cell.get("error")
    assert cell["connected"] == cell["open"] == cell["open_after"] == N
    assert cell["broadcast_got"] == N
    for key in ("rss_kib_per_conn", "handshakes_per_s", "broadcast_ms_p99", "healthz_ms_p99"):
        assert math.isfinite(float(cell[key])), key  # type: ignore[arg-type]
    assert float(cell["rss_kib_per_conn"]) > 0  # type: ignore[arg-type]
    assert cell["healthz_probes"]


def test_each_rung_runs_on_a_fresh_server(tmp_path: Path, clean_env: None) -> None:
    """Two rungs, two server processes; each holds every connection; the broadcast reaches all."""
    addrs = sources()
    ws = measure(Rung("python", "ws", N), SHORT, tmp_path, addrs)
    sse = measure(Rung("python", "sse", N, sse_impl="pushlab"), SHORT, tmp_path, addrs)
    for cell in (ws, sse):
        _held(cell)
        assert cell["server_held"] == N  # the server's own count, not the client's word
        assert float(cell["server_env"]["PUSHLAB_WS_PING_INTERVAL_S"]) == 1.0  # what the rung set
    assert ws["server_pid"] != sse["server_pid"]
    # A fresh process starts from the same footprint; a reused one would start above it.
    assert abs(ws["server_rss_mb_before"] - sse["server_rss_mb_before"]) < 16
    assert (tmp_path / f"{ws['name']}.broadcast.npy").exists()


def test_stream_rung_holds_ndjson_streams(tmp_path: Path, clean_env: None) -> None:
    """``/stream`` climbs the rung as SSE does: the server counts every stream, and the
    broadcast after an idle window of heartbeat lines reaches all of them."""
    cell = measure(Rung("python", "stream", N), SHORT, tmp_path, sources())
    _held(cell)
    assert cell["server_held"] == N


def test_parked_long_polls_are_held_and_answered(tmp_path: Path, clean_env: None) -> None:
    """Long polls park (the server counts them) and the broadcast answers every one."""
    cell = measure(Rung("python", "long-poll", N), SHORT, tmp_path, sources())
    _held(cell)
    assert cell["server_held"] == N


def test_workers_share_one_feed_over_redis(
    tmp_path: Path, clean_env: None, redis_prefix: str
) -> None:
    """Two workers on one port both hold connections, and one publish reaches all of them."""
    params = dataclasses.replace(SHORT, redis_prefix=redis_prefix)
    cell = measure(Rung("workers", "ws", N, workers=2), params, tmp_path, sources())
    _held(cell)
    assert str(cell["redis_prefix"]).startswith(redis_prefix)
    assert len(cell["worker_open"]) == 2 and sum(cell["worker_open"]) == N
    assert min(cell["worker_open"]) > 0  # SO_REUSEPORT spread them


def test_node_rung(tmp_path: Path, clean_env: None) -> None:
    """The Node baseline climbs the same rung."""
    _node_ok()
    _held(measure(Rung("node", "ws", N), SHORT, tmp_path, sources()))


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_floor_rung_holds_on_the_bare_stack(
    transport: str, tmp_path: Path, clean_env: None
) -> None:
    """The floor rung: uvicorn with pushlab's config around an app that only holds the
    connection; every one opened and held, its memory and handshakes measured, no broadcast."""
    cell = measure(Rung("floor", transport, N), SHORT, tmp_path, sources())
    check(LadderCell, cell, str(cell["name"]))
    assert cell["status"] == "ok", cell.get("error")
    assert cell["connected"] == cell["open"] == cell["open_after"] == N
    assert float(cell["rss_kib_per_conn"]) > 0 and float(cell["connect_server_cpu_s"]) > 0
    assert "broadcast_got" not in cell and "server_env" not in cell


def _storm_args(**kw: object) -> argparse.Namespace:
    base = {"rate": 5.0, "outage_s": 0.5, "timeout_s": 40.0}
    return argparse.Namespace(**(base | kw))


# WS and /stream: /stream's held connection is SSE's with another framing, so it covers the
# SSE resume path too; the full storm runs every STORM_TRANSPORTS row.
@pytest.mark.parametrize("transport", ["ws", "stream"])
def test_storm_resumes_every_client_without_loss(
    transport: str, tmp_path: Path, clean_env: None, redis_prefix: str
) -> None:
    """After a SIGKILL and a restart on the same port, clients are back, resumed, 0 lost, 0 dup."""
    params = dataclasses.replace(SHORT, redis_prefix=redis_prefix)
    impl = "pushlab" if transport == "sse" else ""
    rung = Rung("python", transport, N, sse_impl=impl)
    cell = storm_cell(rung, params, _storm_args(), tmp_path, sources())
    check(StormCell, cell, "storm cell")
    assert cell["status"] == "ok", cell.get("error")
    assert cell["resumed"] >= 0.99 * N
    assert cell["lost"] == cell["duplicates"] == cell["gaps"] == 0
    assert cell["opens"] >= N + cell["back"]  # the first connections, then the comebacks
    assert 0 < cell["resumed_s_p50"] <= cell["resumed_s_p99"]


def test_herd_waits_the_same_delays() -> None:
    """Without jitter every client waits the same backoff; with it, they spread."""
    spec = {"transport": "ws", "port": 1, "n": 1, "jitter": False}

    async def delays(jitter: bool) -> list[float]:
        h = Holder(spec | {"jitter": jitter})
        d = h._delays()
        return [next(d) for _ in range(5)]

    import asyncio

    herd = [asyncio.run(delays(False)) for _ in range(2)]
    assert herd[0] == herd[1] == [0.1, 0.2, 0.4, 0.8, 1.6]
    spread = [asyncio.run(delays(True)) for _ in range(2)]
    assert spread[0] != spread[1]


def test_profiles() -> None:
    """Full climbs 1k-19k per transport with Node rows and 36k on workers; short is small."""
    full = profile("full")
    assert {r.n for r in full if r.server == "python"} == {1_000, 5_000, 10_000, 15_000, 19_000}
    assert any(r.server == "workers" and r.n >= 36_000 for r in full)
    # The stack's floor where the targets are read (memory at 15k, handshakes at ~19k).
    assert {(r.transport, r.n) for r in full if r.server == "floor"} == {
        ("ws", 15_000), ("sse", 15_000), ("ws", 19_000), ("sse", 19_000),
    }  # fmt: skip
    assert {r.sse_impl for r in full if r.transport == "sse" and r.server == "python"} == {
        "sse-starlette", "pushlab",
    }  # fmt: skip
    assert max(r.n for r in profile("short")) <= 500
    # Every transport that holds a connection has its rung (short polls hold none).
    held = {t for t in TRANSPORTS if t != "poll"}
    for name in ("short", "full"):
        assert {r.transport for r in profile(name) if r.server == "python"} == held
    assert set(STORM_TRANSPORTS) == {"ws", "sse", "stream"}
    with pytest.raises(ValueError, match="unknown ladder profile"):
        profile("huge")


def _cell(server: str, transport: str, n: int, impl: str = "", **figures: float) -> dict[str, Any]:
    rung = Rung(server, transport, n, sse_impl=impl)
    return rung.as_dict() | {"tags": ["ladder"], "status": "ok", "open": n} | figures


def test_target_rows_come_from_the_saved_cells() -> None:
    """Handshake rows at the largest count both climbed, memory rows at 15k, verdicts computed."""
    from experiments.ladder.targets import rows as target_rows

    def hs(n: int, wall: float, cpu_s: float) -> dict[str, float]:
        return {"connected": n, "handshakes_per_s": wall, "connect_server_cpu_s": cpu_s}

    cells = [
        _cell("python", "ws", 1000, **hs(1000, 1000.0, 0.5), rss_kib_per_conn=9.0),
        _cell("node", "ws", 1000, **hs(1000, 1000.0, 0.2), rss_kib_per_conn=5.0),
        # The same wall-clock rate (the clients' budget), a third of the CPU: Node is 3x cheaper.
        _cell("python", "ws", 15000, **hs(15000, 2000.0, 7.5), rss_kib_per_conn=7.5),
        _cell("node", "ws", 15000, **hs(15000, 2000.0, 2.5), rss_kib_per_conn=6.0),
        _cell("python", "sse", 15000, "pushlab", **hs(15000, 3000.0, 3.0), rss_kib_per_conn=9.0),
        _cell("node", "sse", 15000, **hs(15000, 3000.0, 3.0), rss_kib_per_conn=6.0,
              connect_generator_cpu_pct=95.0),
        _cell("floor", "ws", 15000, **hs(15000, 2000.0, 5.0), rss_kib_per_conn=7.0),
    ]  # fmt: skip
    rows = {r["figure"]: r for r in target_rows(cells)}
    ws = rows["handshakes per server CPU-s (15000 conns; vs node ws)"]
    assert ws["ratio"] == pytest.approx(1 / 3) and not ws["met"] and ws["counts"]
    assert "wall clock 2,000 vs 2,000/s" in ws["note"]
    assert "stack floor 3,000/CPU-s = 0.50x" in ws["note"]  # 15,000 in 5.0 s vs node's 2.5 s
    sse = rows["handshakes per server CPU-s (15000 conns; vs node sse)"]
    assert sse["met"] and not sse["counts"] and "95% CPU" in sse["why_not"]
    mem = rows["KiB RSS / idle conn at 15000 (vs node ws)"]
    assert mem["met"] and mem["python"] == 7.5 and "not met" in mem["note"]
    assert "stack floor 7.0 KiB" in mem["note"]
    assert not rows["KiB RSS / idle conn at 15000 (vs node sse)"]["met"]
    assert target_rows([c for c in cells if c["n"] == 1000])[-1]["why_not"]  # no 15k rung


def test_memory_figure_draws_every_held_transport(tmp_path: Path) -> None:
    """Each held transport gets its line in the colour experiments.plots gives it (a transport
    missing from the ladder's own table used to stop the figure)."""
    import matplotlib.pyplot as plt

    from experiments.ladder import report
    from experiments.plots import COLORS

    cells = [_cell("python", t, n, rss_kib_per_conn=float(n) / 100)
             for t in HELD_TRANSPORTS for n in (100, 300)]  # fmt: skip
    drawn: dict[str, object] = {}
    real_plot = plt.Axes.plot

    def spy(ax: Any, *args: Any, **kw: Any) -> Any:
        drawn[kw["label"]] = kw["color"]
        return real_plot(ax, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plt.Axes, "plot", spy)
        assert report.memory_figure(cells, tmp_path / "m.png") is not None  # type: ignore[arg-type]
    assert drawn == {f"python {t}": COLORS[t] for t in HELD_TRANSPORTS}


def test_storm_figure_colours_by_transport_and_dashes_the_herd(tmp_path: Path) -> None:
    """Each storm cell's comeback curve is in its transport's colour; the herd's is dashed."""
    import matplotlib.pyplot as plt
    import numpy as np

    from experiments.ladder import report
    from experiments.plots import COLORS

    (tmp_path / "raw").mkdir()
    cells = []
    for t, jitter in (("stream", True), ("stream", False), ("ws", True)):
        cell = Rung("python", t, 4).as_dict() | {"jitter": jitter}
        name = f"storm-{cell['name']}-{'jitter' if jitter else 'herd'}.npy"
        np.save(tmp_path / "raw" / name, np.arange(4, dtype=np.int64) * 10**8)
        cells.append(cell)
    drawn: dict[str, tuple[object, object]] = {}
    real_step = plt.Axes.step

    def spy(ax: Any, *args: Any, **kw: Any) -> Any:
        drawn[kw["label"]] = (kw["color"], kw["linestyle"])
        return real_step(ax, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plt.Axes, "step", spy)
        out = report.storm_figure(tmp_path, cells, tmp_path / "s.png")  # type: ignore[arg-type]
    assert out is not None
    assert drawn == {
        "python stream, jitter": (COLORS["stream"], "-"),
        "python stream, no jitter": (COLORS["stream"], "--"),
        "python ws, jitter": (COLORS["ws"], "-"),
    }


def test_ladder_run_saves_meta_cells_and_report(tmp_path: Path, clean_env: None) -> None:
    """``pushlab ladder`` writes its parameters, one cell per rung, raw samples and a report."""
    import json

    from experiments.ladder.cli import run_ladder

    path = run_ladder([Rung("python", "ws", 100)], SHORT, tmp_path, "short")
    assert path.name.endswith("_ladder")
    meta = json.loads((path / "meta.json").read_text())
    assert meta["params"]["ladder"]["idle_s"] == SHORT.idle_s
    cells = json.loads((path / "summary.json").read_text())["cells"]
    assert [c["name"] for c in cells] == ["python-ws-100"] and cells[0]["status"] == "ok"
    assert (path / "raw" / "python-ws-100.broadcast.npy").exists()
    report = (path / "report.md").read_text()
    assert "python-ws-100" in report and (path / "figures" / "ladder_memory.png").exists()


def test_connects_in_flight_stay_under_the_servers_pending_cap() -> None:
    """All holders together keep at most Params.connects_in_flight connects open at once (half
    of one server process's http_max_pending), and one holder never more than IN_FLIGHT."""
    from experiments.ladder.holder import IN_FLIGHT
    from experiments.ladder.run import in_flight_share
    from feed.settings import Settings

    total = Params().connects_in_flight
    assert total <= Settings().http_max_pending // 2
    for n in (300, 1_000, 19_000, 36_000):
        share = in_flight_share(n, 5_000, total)
        assert 1 <= share <= IN_FLIGHT and share * math.ceil(n / 5_000) <= total
    assert in_flight_share(36_000, 5_000, total) == 64  # was 256 each: 2,048 at once


def test_a_refusal_names_the_guard_and_the_server_log_counts_evictions(tmp_path: Path) -> None:
    """A 503 on the upgrade carries the server's reason into the connect errors; the ladder
    reads the server's eviction count from its WARNING lines."""
    import asyncio

    from experiments.ladder.run import evicted_at_least

    body = b"too many connections waiting to send a request head"
    answer = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    async def connect() -> dict[str, Any]:
        server = await asyncio.start_server(refuse, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await Holder({"transport": "ws", "port": port, "n": 3}).open_all()

    opened = asyncio.run(connect())
    assert opened["connected"] == 0
    assert opened["error_counts"] == {f"HTTP 503: {body.decode()}": 3}

    log = tmp_path / "server.log"
    log.write_text(
        "WARNING:  pending request heads at the cap (1024): 12 connections closed so far\n"
        "INFO:     something else\n"
        "WARNING:  pending request heads at the cap (1024): 340 connections closed so far\n"
    )
    assert evicted_at_least(log) == 340
    # The pattern is the server's own message: a reworded one would read as 0 evictions.
    from experiments.ladder.run import EVICTED
    from feed.settings import Settings
    from servers.fastpath.http_protocol import http_protocol

    assert EVICTED.fullmatch(http_protocol(Settings()).evicted.message % (1024, 7))
    assert evicted_at_least(tmp_path / "absent.log") == 0
