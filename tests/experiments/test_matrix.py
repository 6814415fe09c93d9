"""Experiment matrices as data."""

import pytest

from experiments.matrix import (
    IDLE_TRANSPORTS,
    NODE_TRANSPORTS,
    PROTOS,
    Cell,
    available,
    merge,
    profile,
)
from experiments.run import _estimate
from feed.wire.contract import TRANSPORTS, WEBTRANSPORT


@pytest.mark.parametrize("name", ["tiny", "quick", "full"])
def test_profiles_cover_every_transport_once_per_name(name):
    """Every profile measures all four transports and cell names are unique."""
    cells = profile(name)
    assert {c.transport for c in cells if c.kind == "asyncio"} >= set(TRANSPORTS)
    assert len({c.name for c in cells}) == len(cells)


def test_quick_fits_the_three_minute_budget():
    """The quick profile's planned time (windows plus per-cell overhead) stays under 3 minutes."""
    cells = profile("quick")
    assert sum(_estimate(c) for c in cells) < 170
    assert {c.transport for c in cells if c.server == "node"} == {"sse", "ws"}


def test_merge_unites_tags():
    """The same cell from two sweeps is run once, with both sweeps' tags."""
    a, b = Cell("ws", 10, 50, 64, tags=("subs",)), Cell("ws", 10, 50, 64, tags=("rate",))
    assert [c.tags for c in merge([a, b])] == [("subs", "rate")]


def test_cells_needing_unknown_settings_are_dropped_with_a_reason():
    """A cell whose server setting does not exist yet is left out and the reason kept."""
    keep, dropped = available(
        [Cell("ws", 1, 1, 64), Cell("ws", 1, 1, 64, server_env={"PUSHLAB_NO_SUCH": "1"})]
    )
    assert len(keep) == 1 and "PUSHLAB_NO_SUCH" in dropped[0]


def test_unknown_profile():
    """A typo in a profile name is an error, not an empty run."""
    with pytest.raises(ValueError, match="unknown profile"):
        profile("quik")


@pytest.mark.parametrize("name", ["quick", "full"])
def test_idle_memory_has_sse_on_both_implementations(name):
    """The design card's sse-starlette and pushlab's one-task response, side by side."""
    idle = [c for c in profile(name) if c.kind == "idle" and c.transport == "sse"]
    assert [c.server_env for c in idle] == [{}, {"PUSHLAB_SSE_IMPL": "pushlab"}]


def test_protocols_profile_is_every_transport_over_every_http_version():
    """The protocols profile is the full transport x {h1, h1-tls, h2-tls, h3} grid, one load."""
    everything = profile("protocols")
    cells = [c for c in everything if "protocols" in c.tags]
    assert {(c.proto, c.tags) for c in everything if c.kind == "hpack"} == {
        (p, ("hpack",)) for p in PROTOS
    }
    mine = [c for c in cells if c.server == "python"]
    every = {(t, p) for t in TRANSPORTS for p in PROTOS} | {(WEBTRANSPORT, "h3")}
    assert {(c.transport, c.proto) for c in mine} == every
    mine_keys = {("python", c.transport, c.proto) for c in mine}
    # The Node baseline beside them over every protocol it serves (every one in the profile:
    # what it cannot serve is dropped by `available`, with the reason).
    node = {(c.server, c.transport, c.proto) for c in cells if c.server == "node"}
    assert node == {("node", t, p) for t in NODE_TRANSPORTS for p in PROTOS}
    assert len({(c.subscribers, c.rate, c.size) for c in cells}) == 1
    assert all(c.kind == "asyncio" for c in cells)
    idle = {(c.server, c.transport, c.proto) for c in everything if "protocols-idle" in c.tags}
    holding = (*IDLE_TRANSPORTS, WEBTRANSPORT)
    assert idle == {(s, t, p) for s, t, p in node | mine_keys if t in holding}
    multiplex = [(c.proto, c.client) for c in everything if "multiplex" in c.tags]
    shared = {"shared_connection": True}
    assert multiplex == [
        ("h1-tls", {}), ("h2-tls", {}), ("h2-tls", shared), ("h3", {}), ("h3", shared)
    ]  # fmt: skip


def test_proto_is_one_client_option_and_part_of_name_and_server_key():
    """h2-tls asks every transport's client for HTTP/2 and h3 for HTTP/3; h1 names stay as
    they were."""
    h1, tls, h2, h3 = (Cell("sse", 10, 50, 64, proto=p) for p in PROTOS)
    assert h1.name == "asyncio_python_sse_n10_r50_s64"
    assert tls.name.endswith("_h1-tls") and h2.name.endswith("_h2-tls")
    assert h3.name.endswith("_h3")
    assert len({h1.server_key, tls.server_key, h2.server_key, h3.server_key}) == 4
    assert "http2" not in h1.client_options() and "http2" not in tls.client_options()
    assert all(Cell(t, 1, 1, 64, proto="h2-tls").client_options()["http2"] for t in TRANSPORTS)
    assert h3.client_options() == {"http3": True} and "http3" not in h2.client_options()
    assert h2.params()["proto"] == "h2-tls"


def test_quick_has_one_h2_cell_per_transport():
    """make bench measures each transport once over HTTP/2 next to its HTTP/1.1 twin."""
    cells = profile("quick")
    h2 = [c for c in cells if c.proto == "h2-tls"]
    assert sorted(c.transport for c in h2) == sorted(TRANSPORTS)
    names = {c.name for c in cells}
    assert all(c.name.removesuffix("_h2-tls") in names for c in h2)


def test_servers_without_tls_are_dropped_from_tls_cells_with_a_reason():
    """Granian serves plaintext HTTP/1.1 only here, and Node's ws has no HTTP/2 form: those
    cells are dropped with the reason; Node's other HTTP/2 cells stay."""
    sse, ws = (Cell(t, 1, 1, 64, server="node", proto="h2-tls") for t in ("sse", "ws"))
    keep, dropped = available([sse, ws, Cell("sse", 1, 1, 64, server="granian", proto="h1-tls")])
    assert keep == [sse] and len(dropped) == 2
    assert "not supported: Node's ws has no RFC 8441" in dropped[0]
    assert "granian is not served over h1-tls" in dropped[1]
