"""``pushlab browser-run`` in short form: every transport and both whiteboard paths get figures."""

from __future__ import annotations

import argparse
import math

import pytest

from experiments import browser_run
from experiments.records import BrowserCell
from experiments.results import load_as
from tests.support import require

pytestmark = pytest.mark.browser


def test_short_run_writes_a_cell_per_transport(tmp_path, capsys):
    """A one-second run writes meta and a cell for each transport and whiteboard transport."""
    require("chromium", "browser-run drives Debian's Chromium")
    parser = argparse.ArgumentParser()
    browser_run.add_arguments(parser)
    args = parser.parse_args(
        ["--seconds", "1", "--warmup", "0.2", "--strokes", "3", "--root", str(tmp_path)]
    )
    assert browser_run.run(args) == 0
    (folder,) = tmp_path.iterdir()
    meta, cells = load_as(folder, BrowserCell)
    assert meta["params"]["seconds"] == 1 and meta["settings"]["ticker_rate"] == 20
    feed = {c["transport"]: c for c in cells if c["kind"] == "feed"}
    assert sorted(feed) == ["long-poll", "poll", "sse", "ws"]
    for cell in feed.values():
        assert cell["events"] > 0 and cell["no_loss"] and not math.isnan(cell["latency_ms_p50"])
    acks = {c["transport"]: c for c in cells if c["kind"] == "whiteboard_ack"}
    assert sorted(acks) == ["sse+post", "ws"]
    assert all(c["ack_ms_count"] == 3 for c in acks.values())
    assert "wrote" in capsys.readouterr().out
