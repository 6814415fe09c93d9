"""Results folders are written cell by cell and read back."""

from experiments.results import ResultsDir, latest, load


def test_cells_roundtrip(tmp_path):
    """Each cell is on disk as soon as it is added, in JSON and CSV."""
    rd = ResultsDir.create("demo", root=tmp_path)
    rd.write_meta({"profile": "demo"})
    rd.add_cell({"transport": "ws", "p99": 1.5})
    rd.add_cell({"transport": "sse", "p99": 2.5, "extra": [1, 2]})
    meta, cells = load(rd.path)
    assert meta["params"] == {"profile": "demo"}
    assert [c["transport"] for c in cells] == ["ws", "sse"]
    assert (rd.path / "summary.csv").read_text().splitlines()[0] == "transport,p99,extra"
    assert latest(tmp_path, "demo") == rd.path
    assert meta["machine"]["cores"] >= 1
