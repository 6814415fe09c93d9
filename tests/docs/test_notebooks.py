"""The teaching notebooks execute top to bottom and their committed outputs are current."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from experiments.notebooks import errors, execute, text_outputs

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ALL = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_notebook_outputs_are_current(name):
    """Re-executed, each notebook shows the same text as its committed outputs, without errors."""
    path = NOTEBOOKS / f"{name}.ipynb"
    committed = nbformat.read(path, as_version=4)
    assert all(c.get("execution_count") for c in committed.cells if c.cell_type == "code"), (
        f"{name} is committed unexecuted: run `python -m experiments.notebooks {name[:2]}`"
    )
    fresh = execute(path)
    assert errors(fresh) == []
    assert text_outputs(fresh) == text_outputs(committed), (
        f"{name}'s committed outputs are stale: run `python -m experiments.notebooks {name[:2]}`"
    )


def test_every_notebook_is_tested():
    """01 included: it loads the reference run like the others, so nothing is left out."""
    assert ALL[0].startswith("01_") and len(ALL) == 6


def _bench(**figures):
    """A BenchCell: the required parameters plus ``figures`` (experiments/records.py)."""
    params = {
        "cell": "c", "transport": "ws", "subscribers": 10, "rate": 1.0, "size": 64,
        "kind": "asyncio", "server": "python", "server_env": {}, "client": {}, "warmup_s": 1.0,
        "duration_s": 3.0, "generators": 1, "tags": [], "status": "ok",
    }  # fmt: skip
    return params | figures


def fake_results(root: Path) -> None:
    """A bench-like and a compression-like reference run (shapes only; never shown in docs)."""
    latency = {f"latency_ms_{k}": 1.0 for k in ("count", "mean", "min", "max", "p50", "p90")}
    runs = {
        "20260101T000000Z_quick": [
            _bench(transport=t, kind="asyncio", tags=["headline"], server="python",
                   latency_ms_p50=1.0, latency_ms_p99=2.0, server_cpu_s_per_1k_events=0.01,
                   wire_bytes_per_event=130.0, delivered=10, lost=0, duplicates=1,
                   reconnects=1, silent_gaps=0)
            for t in ("poll", "ws")
        ] + [
            _bench(transport="poll", kind="asyncio", tags=["interval"],
                   client={"interval_s": iv}, latency_ms_p50=10.0 * iv,
                   latency_ms_p99=20.0 * iv, requests_per_event=1.0,
                   empty_fraction=0.5, wire_bytes_per_event=300.0)
            for iv in (0.1, 0.5)
        ] + [_bench(transport="ws", kind="idle", subscribers=10, memory_per_connection_kb=5.0)],
        "20260101T000000Z_compression": [
            {"kind": "compression", "payload": p, "size": 64, "deflate": d, "extensions": None,
             "events": 10, "app_bytes_per_event": 100.0,
             "wire_bytes_per_event": 50.0 if d else 102.0, "wire_vs_app": 0.5,
             "server_cpu_s_per_1k_events": 0.1, "cpu_scope": "server"}
            for p in ("tick", "quotes") for d in (False, True)
        ],
        "20260101T000000Z_cluster-bench": [
            {"name": "nginx-3-redis", "instances": 3, "via": "nginx", "broker": "redis",
             "subscribers": 10, "events": 10, "rate": 1.0, "burst": 8, **latency,
             "latency_ms_p99": 1.0, "latency_ms_p99_9": 1.0, "publish_per_s": 1.0,
             "deliveries_per_s": 1.0, "burst_complete": True}
        ],
    }  # fmt: skip
    for name, cells in runs.items():
        (root / name).mkdir(parents=True)
        (root / name / "summary.json").write_text(json.dumps({"cells": cells}))
    (root / "REFERENCE").write_text("\n".join(runs) + "\n")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["04_polling_interval", "05_compression", "06_scale_out"])
def test_notebook_executes_with_results(name, tmp_path, monkeypatch):
    """With reference runs present the notebooks take their data path, still without error."""
    fake_results(tmp_path)
    monkeypatch.setenv("PUSHLAB_RESULTS_ROOT", str(tmp_path))
    nb = execute(NOTEBOOKS / f"{name}.ipynb")
    text = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "Not yet measured" not in text
