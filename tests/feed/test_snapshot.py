"""History snapshots: save, load, restore into a memory broker, and refuse corrupt files."""

import pytest

from feed import snapshot
from feed.memory import MemoryBroker


async def test_round_trip_keeps_seqs(tmp_path):
    """A restored broker continues each topic's seqs where the saved one stopped."""
    a = MemoryBroker(history=5)
    for i in range(8):
        await a.publish("t", {"i": i})
    await a.publish("u", "x")
    path = tmp_path / "snap.jsonl"
    assert snapshot.save(path, a.export()) == 6  # 5 retained of t, 1 of u
    b = MemoryBroker(history=5)
    b.restore(snapshot.load(path))
    batch = await b.read("t", 3, 100)
    assert [e.seq for e in batch.events] == [4, 5, 6, 7, 8]
    assert batch.gap is None
    assert (await b.publish("t", 1)).seq == 9
    assert (await b.publish("u", 1)).seq == 2


def test_missing_file_is_empty(tmp_path):
    """No snapshot yet: nothing to restore."""
    assert snapshot.load(tmp_path / "none") == snapshot.Snapshot()


def test_non_consecutive_seqs_refused(tmp_path):
    """A file whose seqs jump is corrupt and refused, not silently loaded."""
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"topic":"t","seq":1,"ts_ns":1,"data":0}\n{"topic":"t","seq":3,"ts_ns":1,"data":0}\n'
    )
    with pytest.raises(ValueError, match="does not follow"):
        snapshot.load(path)


async def test_restore_needs_empty_broker(tmp_path):
    """Restoring over live topics would fork seqs: refused."""
    b = MemoryBroker(history=5)
    await b.publish("t", 1)
    with pytest.raises(RuntimeError):
        b.restore(snapshot.Snapshot())


async def test_reclaimed_topics_keep_their_seqs_across_a_restart(tmp_path):
    """Tombstones and the floor are saved: a reclaimed topic continues, a new one starts above."""
    a = MemoryBroker(history=5, max_topics=1)
    for name in ("t", "u", "v"):
        for _ in range(3):
            await a.publish(name, 1)  # each new topic reclaims the previous one
    path = tmp_path / "snap.jsonl"
    snapshot.save(path, a.export(), *a.last_seqs())
    b = MemoryBroker(history=5, max_topics=2)
    b.restore(snapshot.load(path))
    assert (await b.read("u", 3, 10)).gap is None
    assert (await b.publish("u", 1)).seq == 4
    assert (await b.publish("new", 1)).seq == 4  # above the floor: t's 3, folded in by a
