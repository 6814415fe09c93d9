"""Results folders are written cell by cell and read back."""

from typing import TypedDict

from experiments.results import ResultsDir, latest, load_as, run_name


class Demo(TypedDict, total=False):
    transport: str
    p99: float
    extra: list[int]


def test_cells_roundtrip(tmp_path):
    """Each cell is on disk as soon as it is added, in JSON and CSV."""
    rd = ResultsDir.create("demo", root=tmp_path)
    rd.write_meta({"profile": "demo"})
    rd.add_cell({"transport": "ws", "p99": 1.5})
    rd.add_cell({"transport": "sse", "p99": 2.5, "extra": [1, 2]})
    meta, cells = load_as(rd.path, Demo)
    assert meta["params"] == {"profile": "demo"}
    assert [c["transport"] for c in cells] == ["ws", "sse"]
    assert (rd.path / "summary.csv").read_text().splitlines()[0] == "transport,p99,extra"
    assert latest(tmp_path, "demo") == rd.path
    assert meta["machine"]["cores"] >= 1


def test_run_name(tmp_path):
    """The experiment name of a folder drops the timestamp and a same-second ``-N``."""
    assert run_name(tmp_path / "20261126T104925Z_quick") == "quick"
    assert run_name(tmp_path / "20261126T104925Z_cluster-pubsub-loss-2") == "cluster-pubsub-loss"
    assert run_name(tmp_path / "20261126T024211Z_perf-granian") == "perf-granian"


def test_machine_facts_are_the_ones_at_the_start(tmp_path, monkeypatch):
    """Rewriting meta at the end keeps the load average the run started on, not its own."""
    loads = iter([(0.1, 0.2, 0.3), (1.9, 1.0, 0.5)])
    monkeypatch.setattr("experiments.machine.os.getloadavg", lambda: next(loads))
    rd = ResultsDir.create("demo", root=tmp_path)
    rd.write_meta({"profile": "demo"})
    rd.write_meta({"profile": "demo"}, ended_at=1.0)
    meta, _ = load_as(rd.path, Demo)
    assert meta["machine"]["load_avg"] == [0.1, 0.2, 0.3] and meta["ended_at"] == 1.0
