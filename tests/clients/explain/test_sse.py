"""The explainer's SSE line annotations (WHATWG HTML §9.2.6)."""

from __future__ import annotations

from clients.explain.sse import annotate_sse


def test_annotate_sse_names_every_line():
    """id, event, data, retry, comments and blank lines are each recognised."""
    text = "retry: 1000\n\n: ping\n\nid: 3\nevent: ready\ndata: {}\n\n"
    kinds = [line["kind"] for line in annotate_sse(text)]
    assert kinds == ["retry", "blank", "comment", "blank", "id", "event", "data", "blank"]
    assert annotate_sse("id: 3\n")[0]["value"] == "3"


def test_annotate_sse_strips_exactly_one_leading_space():
    """WHATWG: one space after the colon goes; more spaces are data; CR alone ends a line."""
    lines = annotate_sse("data:  two\rdata:none\r\ndata: one\n")
    assert [(line["kind"], line["value"]) for line in lines] == [
        ("data", " two"),
        ("data", "none"),
        ("data", "one"),
    ]
