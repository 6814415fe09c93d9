"""experiments/report_costs.py: sections computed from saved cells."""

from experiments.report_costs import memory_section


def _idle(transport: str, kb: float, env: dict[str, str] | None = None) -> dict:
    return {
        "status": "ok", "kind": "idle", "tags": ["idle"], "server": "python",
        "transport": transport, "server_env": env or {}, "client": {}, "generator": "idle",
        "idle_connections": 200, "server_rss_mb_before": 60.0, "server_rss_mb": 66.0,
        "memory_per_connection_kb": kb,
    }  # fmt: skip


def test_memory_names_both_sse_implementations_with_their_figures():
    s = memory_section(
        [_idle("ws", 17.7), _idle("sse", 42.4), _idle("sse", 13.1, {"PUSHLAB_SSE_IMPL": "pushlab"})]
    )
    assert [r[0] for r in s.rows] == ["sse", "sse sse_impl=pushlab", "ws"]
    text = " ".join(s.text)
    assert "sse 42.4 KiB, sse sse_impl=pushlab 13.1 KiB" in text


def test_memory_with_one_sse_row_says_nothing_of_implementations():
    s = memory_section([_idle("ws", 17.7), _idle("sse", 42.4)])
    assert "implementations" not in " ".join(s.text)
