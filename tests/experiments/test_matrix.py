"""Experiment matrices as data."""

import pytest

from experiments.matrix import Cell, available, merge, profile
from experiments.run import _estimate
from feed.wire.contract import TRANSPORTS


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
