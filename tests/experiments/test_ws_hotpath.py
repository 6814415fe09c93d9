"""The send-path experiment runs end to end in a tiny form and writes its parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments import ws_hotpath

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_tiny_run_reports_rate_cpu_and_parameters(tmp_path, fmt):
    """200 events, 2 replays: every replay delivered all events; figures and params are saved."""
    out = tmp_path / "r.json"
    argv = ["--repo", str(REPO), "--events", "200", "--replays", "2", "--format", fmt]
    assert ws_hotpath.main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["params"]["events"] == 200 and result["params"]["format"] == fmt
    assert result["params"]["repo_commit"]
    assert len(result["runs"]) == 2
    assert all(r["events_per_s"] > 0 and r["extensions"] is None for r in result["runs"])
    assert result["server_cpu_s"] > 0  # ns clock (experiments/cpuclock.py): never 0
    assert "python" in json.dumps(result["machine"]).lower()
