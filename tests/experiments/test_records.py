"""Saved runs are checked against their declared records when they are loaded."""

import json
import shutil
from pathlib import Path

import pytest

from experiments.records import BenchCell, RatioRow, RecordError, check
from experiments.results import load, load_checked

ROOT = Path(__file__).resolve().parents[2] / "results"
# Tests write their own runs under results/tmp*/ (git-ignored): not committed, and a second
# `make test` in the same checkout would otherwise collect the first one's.
COMMITTED = sorted(
    p.parent
    for p in ROOT.glob("**/meta.json")
    if not p.relative_to(ROOT).parts[0].startswith("tmp")
)
QUICK = ROOT / "20261126T104925Z_quick"


def test_committed_runs_are_found():
    """The scan below sees the committed runs (a moved results/ would pass it vacuously)."""
    assert len(COMMITTED) >= 10 and QUICK in COMMITTED


@pytest.mark.parametrize("run", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_committed_run_loads(run: Path):
    """Each committed run's meta and cells match the records its folder name selects."""
    meta, cells = load_checked(run)
    assert meta["machine"] and len(cells) == len(
        json.loads((run / "summary.json").read_text())["cells"]
    )


@pytest.mark.parametrize("run", sorted(p.parent for p in ROOT.glob("**/ratios.json")))
def test_committed_ratios_are_ratio_rows(run: Path):
    """ratios.json rows carry exactly RatioRow's keys."""
    for i, row in enumerate(json.loads((run / "ratios.json").read_text())["ratios"]):
        check(RatioRow, row, f"{run}: row {i}")


def _copy(tmp_path: Path) -> Path:
    dst = tmp_path / QUICK.name
    shutil.copytree(QUICK, dst, ignore=shutil.ignore_patterns("figures", "report.*"))
    return dst


def _edit(path: Path, change) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def test_unknown_cell_key_names_file_and_key(tmp_path: Path):
    """A cell key no record declares is an error naming summary.json, the cell and the key."""
    run = _copy(tmp_path)
    _edit(run / "summary.json", lambda o: o["cells"][3].update(latency_ms_p42=1.0))
    with pytest.raises(RecordError, match=r"summary\.json: cell 3: unknown key 'latency_ms_p42'"):
        load(run)


def test_missing_cell_key_names_file_and_key(tmp_path: Path):
    """A cell without a required key is an error naming the key."""
    run = _copy(tmp_path)
    _edit(run / "summary.json", lambda o: o["cells"][0].pop("status"))
    with pytest.raises(RecordError, match=r"summary\.json: cell 0: missing key 'status'"):
        load(run)


def test_nested_records_are_checked(tmp_path: Path):
    """Keys inside meta.json's nested records (a server, a cell's params) are checked too."""
    run = _copy(tmp_path)
    _edit(run / "meta.json", lambda o: o["servers"][1].update(pid=1))
    with pytest.raises(RecordError, match=r"meta\.json: servers\[1\]: unknown key 'pid'"):
        load(run)
    run = _copy(tmp_path / "again")
    _edit(run / "meta.json", lambda o: o["params"]["cells"][0].pop("transport"))
    with pytest.raises(RecordError, match=r"params: cells\[0\]: missing key 'transport'"):
        load(run)


def test_not_an_object_is_an_error():
    """A cell that is not a JSON object says what it is."""
    with pytest.raises(RecordError, match=r"here: expected an object \(BenchCell\)"):
        check(BenchCell, [1, 2], "here")


def test_runner_rows_are_checked_before_they_are_written():
    """A figure records.py does not declare fails the row the runner builds, naming the key."""
    from experiments.matrix import Cell
    from experiments.run import _row

    cell = Cell("ws", 10, 1.0, 64)
    ok = _row({**cell.params(), "status": "ok", "events_per_s": 10.0}, cell)
    assert ok["events_per_s"] == 10.0 and ok["cell"] == cell.name
    with pytest.raises(RecordError, match=r"unknown key 'events_per_min'"):
        _row({**cell.params(), "status": "ok", "events_per_min": 600.0}, cell)
