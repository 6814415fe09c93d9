"""Figure blocks are rendered from results files only, and say so when there is nothing."""

from __future__ import annotations

import json
import math

import pytest

from experiments.docfigures import DocFigureError, main, render

DOC = (
    "x\n<!-- fig metric=latency_ms_p99 where=tags:headline cols=transport unit=ms -->\n"
    "old\n<!-- /fig -->\ny\n"
)


def bench(**figures):
    """A bench cell (experiments.records.BenchCell) with its required keys and ``figures``."""
    params = {
        "cell": "c", "transport": "ws", "subscribers": 10, "rate": 1.0, "size": 64,
        "kind": "asyncio", "server": "python", "server_env": {}, "client": {}, "warmup_s": 1.0,
        "duration_s": 3.0, "generators": 1, "tags": [], "status": "ok",
    }  # fmt: skip
    return params | figures


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
            bench(transport="ws", tags=["headline"], latency_ms_p99=1.25),
            bench(transport="sse", tags=["headline"], latency_ms_p99=math.nan),
            bench(transport="poll", tags=["rate"], latency_ms_p99=9.0),
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
    assert "*Not yet measured:* `latency_ms_p99`" in out and "make bench" in out


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
            bench(transport="sse", tags=["headline"], latency_ms_p99=40.0, server_env={}),
            bench(transport="sse", tags=["headline"], latency_ms_p99=13.0,
                  server_env={"PUSHLAB_SSE_IMPL": "pushlab"}),
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
            bench(transport="ws", wire_bytes_per_event=132.4, latency_ms_p99=4.284),
            bench(transport="sse", wire_bytes_per_event=151.0),  # no p99: not a row
        ],
    )
    doc = (
        "<!-- fig metric=wire_bytes_per_event,latency_ms_p99 cols=transport unit=B,ms "
        "digits=0,2 -->\n<!-- /fig -->\n"
    )
    out = render(doc, results, docs)
    assert "| transport | wire_bytes_per_event (B) | latency_ms_p99 (ms) |" in out
    assert "| ws | 132 | 4.28 |" in out and "sse" not in out


def test_envelope_table_prices_a_million_users_from_the_run(tmp_path):
    """table=envelope multiplies the run's idle memory and CPU per event by the assumptions."""
    results, docs = tmp_path / "results", tmp_path / "docs"
    docs.mkdir()
    make_run(
        results,
        [
            bench(transport="ws", kind="idle", server_env={}, memory_per_connection_kb=16.0),
            bench(transport="ws", tags=["headline"], server="python",
                  server_cpu_s_per_1k_events=0.01, wire_bytes_per_event=100.0,
                  latency_ms_p99=4.0),
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
            {
                "probe": "a",
                "item": 1,
                "attack": "x",
                "expected": "401",
                "pushlab": "401",
                "node": "200 | open",
            },
            {
                "probe": "b",
                "item": 1,
                "attack": "y",
                "expected": "408",
                "pushlab": "no answer within 3 s",
                "node": "n/a",
            },
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


def test_a_key_the_run_does_not_declare_is_an_error(tmp_path):
    """A misspelt metric, column or condition names the key and the record, not "not measured"."""
    results, docs = tmp_path / "results", tmp_path / "docs"
    docs.mkdir()
    make_run(results, [bench(latency_ms_p99=1.0)])
    typos = [
        "metric=latency_ms_p999",
        "metric=latency_ms_p99 cols=transprot",
        "metric=latency_ms_p99 where=tag:headline",
        "cols=transport,statsu",
    ]
    for marker in typos:
        doc = f"<!-- fig {marker} -->\n<!-- /fig -->\n"
        with pytest.raises(DocFigureError, match="which BenchCell does not declare"):
            render(doc, results, docs)


def test_a_run_that_does_not_match_its_record_is_an_error(tmp_path):
    """A reference run with an undeclared key fails loudly (the file and the key)."""
    results, docs = tmp_path / "results", tmp_path / "docs"
    docs.mkdir()
    make_run(results, [bench(latency_ms_p99=1.0, latency_ms_p98=1.0)])
    with pytest.raises(ValueError, match=r"summary\.json: cell 0: unknown key 'latency_ms_p98'"):
        render(DOC, results, docs)


KNEES = (
    "<!-- fig metric=events_per_s where=kind:knee cols=row expect=transports -->\n"
    "old\n<!-- /fig -->\n"
)


def knee_row(transport, events):
    """A capacity knee row as the reference run saves it (experiments.records.KneeRow)."""
    return {
        "kind": "knee", "tags": ["capacity", "knee"], "status": "derived",
        "row": f"pushlab {transport}", "server": "python", "transport": transport,
        "search": "knee", "step": 1, "subscribers": 10, "rate": 10.0, "events_per_s": events,
        "connections": 10, "server_cpu_pct": 50.0, "wire_bytes_per_s": 1e4,
        "generator_cpu_pct": 10.0, "server_cpu_us_per_event": 50.0,
        "generator_cpu_us_per_event": 10.0, "latency_ms_p99": 5.0, "lower_bound": False,
        "why": "the next step broke the level",
    }  # fmt: skip


def test_a_run_older_than_a_transport_says_what_it_lacks(tmp_path):
    """``expect=transports``: rows for what the run measured, the missing transports named, and
    no row (no number) for them."""
    results = tmp_path / "results"
    make_run(results, [knee_row(t, 100.0) for t in ("poll", "long-poll", "sse", "ws")])
    out = render(KNEES, results, tmp_path)
    assert "| pushlab ws | 100.0 |" in out
    assert "*Not measured in the reference run:* `stream`." in out
    assert "| pushlab stream" not in out


def test_a_run_with_every_transport_has_no_such_line(tmp_path):
    """Once the reference run has the row, it is a row like the others and the line goes."""
    from feed.wire.contract import TRANSPORTS

    results = tmp_path / "results"
    make_run(results, [knee_row(t, 100.0) for t in TRANSPORTS])
    out = render(KNEES, results, tmp_path)
    assert "| pushlab stream | 100.0 |" in out and "Not measured" not in out


def test_expect_only_knows_transports(tmp_path):
    """A misspelt ``expect`` is an error, not a silent no-op."""
    results = tmp_path / "results"
    make_run(results, [knee_row("ws", 100.0)])
    with pytest.raises(DocFigureError, match="expect="):
        render(KNEES.replace("expect=transports", "expect=servers"), results, tmp_path)


def test_max_rows_shows_a_whole_grid(tmp_path):
    """Past 12 rows a table is cut with a count of the rest, unless ``max_rows`` asks for more."""
    results, docs = tmp_path / "results", tmp_path / "docs"
    docs.mkdir()
    cells = [bench(transport="ws", tags=["headline"], subscribers=n, latency_ms_p99=1.0)
             for n in range(1, 16)]  # fmt: skip
    make_run(results, cells)
    cut = render(DOC.replace("cols=transport", "cols=subscribers"), results, docs)
    assert "(3 more rows there)" in cut and "| 13 |" not in cut
    whole = render(DOC.replace("cols=transport", "cols=subscribers max_rows=20"), results, docs)
    assert "more rows there" not in whole and "| 15 |" in whole
