"""experiments/report_delivery.py: the run section names what the unlabelled SSE rows ran."""

from experiments.report_delivery import run_section, sse_impls


def _meta(*impls: str) -> dict:
    servers = [{"kind": "python", "settings": {"sse_impl": i}} for i in impls]
    servers.append({"kind": "node", "settings": {}})
    return {"params": {"profile": "quick"}, "machine": {}, "servers": servers}


def _cell(index: int, transport: str = "sse", env: dict[str, str] | None = None) -> dict:
    return {"status": "ok", "server": "python", "transport": transport, "server_index": index,
            "server_env": env or {}}  # fmt: skip


def test_the_default_rows_implementation_comes_from_the_servers_settings():
    meta = _meta("sse-starlette", "pushlab")
    variant = _cell(1, env={"PUSHLAB_SSE_IMPL": "pushlab"})
    assert sse_impls(meta, [_cell(0), variant, _cell(0, "ws")]) == ["sse-starlette"]
    text = " ".join(run_section(meta, [_cell(0), variant]).text)
    assert "`sse` ran `sse_impl` = `sse-starlette`" in text


def test_an_environment_override_shows():
    """PUSHLAB_SSE_IMPL=pushlab make bench: the unlabelled rows say so."""
    assert sse_impls(_meta("pushlab"), [_cell(0)]) == ["pushlab"]
    assert sse_impls(_meta("pushlab"), [_cell(5)]) == []  # no such server: nothing claimed
