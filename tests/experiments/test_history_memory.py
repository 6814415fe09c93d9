"""experiments.history_memory: its two measurements run and report consistent figures."""

from experiments.history_memory import measure, topic_costs


async def test_topic_costs_are_small_and_tombstones_counted():
    """Empty held topics and tombstones cost hundreds of bytes, one tombstone per replaced topic."""
    costs = await topic_costs(200)
    assert costs["tombstones"] == 200
    assert 0 < costs["per_held_empty_topic"] < 2_000
    assert 0 < costs["per_tombstone"] < 1_000


async def test_measure_reports_held_bytes_of_a_server_child():
    """A short run: every event held, and the held bytes are about 3 x the uploaded JSON."""
    result = await measure(count=20, size=1_000, subscribers=False, default_budgets=False)
    assert result["history_events"] == 20
    assert 2 * result["uploaded_bytes"] < result["held_bytes"] < 5 * result["uploaded_bytes"]
