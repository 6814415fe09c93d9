"""The teaching notebooks execute top to bottom (they read saved files only)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
OURS = ["02_handshake_and_frames", "03_reconnect_and_resume", "04_polling_interval",
        "05_compression", "06_scale_out"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", OURS)
def test_notebook_executes(name):
    """The notebook runs without error in the venv's kernel."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []


def fake_results(root: Path) -> None:
    """A bench-like and a compression-like reference run (shapes only; never shown in docs)."""
    runs = {
        "20260101T000000Z_quick": [
            {"transport": t, "kind": "asyncio", "tags": ["headline"], "latency_ms_p50": 1.0,
             "delivered": 10, "lost": 0, "duplicates": 1, "reconnects": 1, "silent_gaps": 0}
            for t in ("poll", "ws")
        ] + [
            {"transport": "poll", "kind": "asyncio", "tags": ["interval"],
             "client": {"interval_s": iv}, "latency_ms_p50": 10.0 * iv,
             "latency_ms_p99": 20.0 * iv, "requests_per_event": 1.0,
             "empty_fraction": 0.5, "wire_bytes_per_event": 300.0}
            for iv in (0.1, 0.5)
        ] + [{"transport": "ws", "kind": "idle", "subscribers": 10,
               "memory_per_connection_kb": 5.0}],
        "20260101T000000Z_compression": [
            {"payload": p, "size": 64, "deflate": d, "app_bytes_per_event": 100.0,
             "wire_bytes_per_event": 50.0 if d else 102.0, "wire_vs_app": 0.5,
             "server_cpu_s_per_1k_events": 0.1}
            for p in ("tick", "quotes") for d in (False, True)
        ],
        "20260101T000000Z_cluster-bench": [{"instances": 3, "via": "nginx", "broker": "redis"}],
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
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()  # fmt: skip
    text = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "Not yet measured" not in text
