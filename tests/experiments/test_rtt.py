"""The RTT experiment runs end to end against a uvicorn child and writes its results folder."""

from __future__ import annotations

import dataclasses
import json

import pytest

from experiments.rtt import MODES, TINY, RttParams, run_rtt
from tests.support import FULL


@pytest.mark.slow
async def test_tiny_rtt_run_writes_results(tmp_path):
    """Every mode x size cell has n samples on disk, ordered percentiles and a figure."""
    params = TINY if not FULL else dataclasses.replace(TINY, n=2000, warmup=200, profile="full")
    rd = await run_rtt(params, tmp_path)
    meta = json.loads((rd.path / "meta.json").read_text())
    assert meta["params"]["n"] == params.n and meta["settings"]["ticker_rate"] == 0
    assert meta["machine"]["cores"] >= 1 and meta["ended_at"] >= meta["started_at"]
    cells = json.loads((rd.path / "summary.json").read_text())["cells"]
    assert {(c["mode"], c["size"]) for c in cells} == {(m, s) for m in MODES for s in params.sizes}
    for c in cells:
        assert not c["truncated"] and c["rtt_us_count"] == params.n
        assert 0 < c["rtt_us_p50"] <= c["rtt_us_p90"] <= c["rtt_us_p99"] <= c["rtt_us_max"]
        samples = (rd.path / "raw" / f"{c['mode']}-{c['size']}.txt").read_text().split()
        assert len(samples) == params.n
    assert (rd.path / "figures" / "rtt.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_time_limit_truncates_a_cell(tmp_path):
    """A cell stops at max_seconds and says so instead of running unbounded."""
    params = RttParams(n=10**9, warmup=0, sizes=(8,), modes=("ws",), max_seconds=0.2)
    rd = await run_rtt(params, tmp_path)
    (cell,) = rd.cells
    assert cell["truncated"] and 0 < cell["rtt_us_count"] < 10**9
