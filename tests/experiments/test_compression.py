"""The compression experiment measures real frames from a spawned server."""

from __future__ import annotations

from experiments.compression import run
from experiments.records import CompressionCell
from experiments.results import load_as


def test_small_compression_run(tmp_path):
    """Deflate on: negotiated and smaller than the app bytes; off: a few header bytes larger."""
    path = run(20, (512,), ("tick",), tmp_path)
    meta, cells = load_as(path, CompressionCell)
    assert meta["params"]["events"] == 20 and meta["params"]["sizes"] == [512]
    off, on = sorted(cells, key=lambda c: c["deflate"])
    assert off["events"] == on["events"] == 20
    assert off["app_bytes_per_event"] == on["app_bytes_per_event"]
    assert off["extensions"] is None
    assert on["extensions"].startswith("permessage-deflate")
    assert 0 < off["wire_bytes_per_event"] - off["app_bytes_per_event"] <= 4
    assert on["wire_bytes_per_event"] < on["app_bytes_per_event"]
