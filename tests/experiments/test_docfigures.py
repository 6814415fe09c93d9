"""Figure blocks are rendered from results files only, and say so when there is nothing."""

from __future__ import annotations

import json
import math

from experiments.docfigures import main, render

DOC = (
    "x\n<!-- fig metric=lat where=tags:headline cols=transport unit=ms -->\nold\n<!-- /fig -->\ny\n"
)


def make_run(root, cells, name="20260101T000000Z_quick"):
    (root / name).mkdir(parents=True)
    (root / name / "summary.json").write_text(json.dumps({"cells": cells}))
    (root / "REFERENCE").write_text(name + "\n")


def test_table_from_the_reference_run(tmp_path):
    """Matching cells become table rows with a relative link to their summary.json."""
    results, docs = tmp_path / "results", tmp_path / "docs"
    docs.mkdir()
    make_run(
        results,
        [
            {"transport": "ws", "tags": ["headline"], "lat": 1.25},
            {"transport": "sse", "tags": ["headline"], "lat": math.nan},
            {"transport": "poll", "tags": ["rate"], "lat": 9.0},
        ],
    )
    out = render(DOC, results, docs)
    assert "| ws | 1.2 |" in out or "| ws | 1.3 |" in out
    assert "sse" not in out and "poll" not in out
    assert "(../results/20260101T000000Z_quick/summary.json)" in out
    assert out.startswith("x\n") and out.endswith("<!-- /fig -->\ny\n")
    assert render(out, results, docs) == out


def test_not_yet_measured_without_reference(tmp_path):
    """No REFERENCE file: the block says so instead of showing numbers."""
    out = render(DOC, tmp_path / "results", tmp_path)
    assert "*Not yet measured:* `lat`" in out and "make bench" in out


def test_check_mode_reports_stale_files(tmp_path, capsys):
    """--check exits 1 on a stale file and leaves it untouched."""
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    assert main([str(doc), "--results", str(tmp_path / "results"), "--check"]) == 1
    assert doc.read_text() == DOC
    assert main([str(doc), "--results", str(tmp_path / "results")]) == 0
    assert main([str(doc), "--results", str(tmp_path / "results"), "--check"]) == 0


def test_server_env_column_names_the_implementation(tmp_path):
    """Two rows of one transport are told apart by their server settings."""
    results, docs = tmp_path / "results", tmp_path / "docs"
    docs.mkdir()
    make_run(
        results,
        [
            {"transport": "sse", "tags": ["headline"], "lat": 40.0, "server_env": {}},
            {"transport": "sse", "tags": ["headline"], "lat": 13.0,
             "server_env": {"PUSHLAB_SSE_IMPL": "pushlab"}},
        ],
    )  # fmt: skip
    doc = DOC.replace("cols=transport", "cols=transport,server_env")
    out = render(doc, results, docs)
    assert "| sse | - | 40.0 |" in out and "| sse | sse_impl=pushlab | 13.0 |" in out


def test_several_metrics_give_one_column_each(tmp_path):
    """metric=a,b renders both columns with their own units and digits; rows need every metric."""
    results, docs = tmp_path / "results", tmp_path / "docs"
    docs.mkdir()
    make_run(
        results,
        [
            {"transport": "ws", "bytes": 132.4, "p99": 4.284},
            {"transport": "sse", "bytes": 151.0},  # no p99: not a row
        ],
    )
    doc = "<!-- fig metric=bytes,p99 cols=transport unit=B,ms digits=0,2 -->\n<!-- /fig -->\n"
    out = render(doc, results, docs)
    assert "| transport | bytes (B) | p99 (ms) |" in out
    assert "| ws | 132 | 4.28 |" in out and "sse" not in out


def test_envelope_table_prices_a_million_users_from_the_run(tmp_path):
    """table=envelope multiplies the run's idle memory and CPU per event by the assumptions."""
    results, docs = tmp_path / "results", tmp_path / "docs"
    docs.mkdir()
    make_run(
        results,
        [
            {"transport": "ws", "kind": "idle", "server_env": {}, "memory_per_connection_kb": 16.0},
            {"transport": "ws", "tags": ["headline"], "server": "python",
             "server_cpu_s_per_1k_events": 0.01, "wire_bytes_per_event": 100.0,
             "latency_ms_p99": 4.0},
        ],
    )  # fmt: skip
    out = render("<!-- fig table=envelope transport=ws -->\n<!-- /fig -->\n", results, docs)
    assert "| idle memory | 16.0 KiB × 1,000,000 | 15.3 GiB |" in out
    assert "| CPU for deliveries | 16,667/s × 10 µs | 0.2 cores |" in out
    assert "| one broadcast to everyone | 1,000,000 × 10 µs | 10 core-seconds |" in out
    assert "summary.json" in out
    sse = render("<!-- fig table=envelope transport=sse -->\n<!-- /fig -->\n", results, docs)
    assert "*Not yet measured:*" in sse


def test_text_table_without_a_metric(tmp_path):
    """A marker without ``metric`` shows the named columns of every matching cell as text."""
    results, docs = tmp_path / "results", tmp_path / "docs"
    docs.mkdir()
    make_run(
        results,
        [
            {"probe": "a", "pushlab": "401", "node": "200 | open"},
            {"probe": "b", "pushlab": "no answer within 3 s", "node": "n/a"},
        ],
        name="20260101T000000Z_abuse",
    )
    doc = "<!-- fig run=abuse cols=probe,pushlab,node make=abuse -->\nold\n<!-- /fig -->\n"
    out = render(doc, results, docs)
    assert "| probe | pushlab | node |\n|---|---|---|\n" in out
    assert "| a | 401 | 200 / open |" in out and "| b | no answer within 3 s | n/a |" in out
    assert render(out, results, docs) == out
    (results / "REFERENCE").write_text("20260101T000000Z_quick\n")
    assert "*Not yet measured* in the reference run" in render(doc, results, docs)
