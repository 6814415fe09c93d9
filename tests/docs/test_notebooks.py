"""The teaching notebooks execute top to bottom (they read saved files only)."""

from __future__ import annotations

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
