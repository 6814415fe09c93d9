"""Where a server's CPU goes: perf's tables parsed, and a real recording of a paced cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.cpu_profile import ProfileParams, run, samples, shares
from tests.support import require

DSO = """# To display the perf.data header info, please use --header/--header-only options.
#
#
# Total Lost Samples: 0
#
# Samples: 1K of event 'cpu-clock'
# Event count (approx.): 1748000000
#
# Overhead  Shared Object
# ........  .....................
#
    61.73%  [kernel.kallsyms]
    29.25%  libpython3.11.so.1.0
     4.87%  loop.cpython-311-x86_64-linux-gnu.so
     0.24%  [vdso]
"""

SYM = """# Samples: 3496  of event 'cpu-clock'
    14.84%  [.] _PyEval_EvalFrameDefault
    10.99%  [k] _raw_spin_unlock_irqrestore
"""


def test_perf_tables_are_parsed():
    assert shares(DSO) == [
        ("[kernel.kallsyms]", 61.73),
        ("libpython3.11.so.1.0", 29.25),
        ("loop.cpython-311-x86_64-linux-gnu.so", 4.87),
        ("[vdso]", 0.24),
    ]
    assert shares(SYM)[0] == ("[.] _PyEval_EvalFrameDefault", 14.84)
    assert samples(SYM) == 3496 and samples("no header") == 0
    assert samples(DSO) == 1000  # perf rounds: "1K"


@pytest.mark.load
def test_a_paced_cell_is_recorded_and_split(tmp_path: Path):
    """Node ws and Python ws, 100 subscribers x 100 events/s: perf samples each server's window."""
    require("perf", "Debian's linux-perf samples the server")
    params = ProfileParams(("node:ws", "python:ws"), 100, 100.0, warmup_s=0.3, duration_s=2.0)
    cells = json.loads((run(params, tmp_path) / "summary.json").read_text())["cells"]
    assert [c["server"] for c in cells] == ["node", "python"]
    for c in cells:
        assert c["status"] == "ok", c.get("reason")
        assert c["delivered"] > 0 and c["lost"] == 0 and c["duplicates"] == 0, c["cell"]
        # 10k writes/s for 2 s is ~40-100 ms of server CPU: dozens of samples at 999 Hz, about
        # half of them in the kernel. At 6 x 20 (14 samples) none landed there once.
        assert c["perf_samples"] >= 20 and 0 < c["kernel_pct"] < 100, c
        assert c["top_symbols"] and all(0 < pct <= 100 for _, pct in c["top_symbols"])
    python_dsos = cells[1]["dso_pct"]
    assert any(d.startswith("libpython") for d in python_dsos), python_dsos
    assert not any(d.startswith("libpython") for d in cells[0]["dso_pct"])
