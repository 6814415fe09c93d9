"""experiments.webtransport: a tiny run writes cells that load as their record."""

from __future__ import annotations

from experiments.records import WebTransportCell
from experiments.results import load_as
from experiments.webtransport import CELLS, run


def test_a_small_run_saves_every_cell(tmp_path):
    """Three sessions per cell for half a second: deliveries counted, nothing lost on streams."""
    path = run(CELLS, sessions=3, rate=40, size=64, duration_s=0.5, warmup_s=0.1, root=tmp_path)
    meta, cells = load_as(path, WebTransportCell)
    assert meta["params"]["sessions"] == 3
    assert [c["cell"] for c in cells] == ["wt-stream", "wt-datagrams", "ws"]
    for c in cells:
        assert c["deliveries"] >= 3 * 5, c  # 40/s for 0.5 s to three sessions, with slack
        assert c["server_cpu_s_per_1k_deliveries"] > 0
        assert c["reconnects"] == 0
        assert 0 < c["generator_cpu_pct"] < 90 and not c["generator_bound"], c
    for c in cells:
        if c["cell"] != "wt-datagrams":
            assert c["lost"] == 0 and c["server_dropped"] == 0, c
