"""Save the in-memory history at shutdown and load it at start, so a restart keeps seqs.

Without it a restarted memory broker starts every topic at seq 1 again and resuming clients get
an ``ahead`` gap: they lose nothing that was still retained only if the history survives. The
file is JSON lines, one event (its wire JSON) per line, topics in any order and each topic's
events consecutive and ascending; it is written to a temporary file and renamed, so a crash
mid-write leaves the previous snapshot intact.

Topics reclaimed with their history (``feed.memory``'s tombstones) keep their seqs across the
restart too: after the events, a line ``{"topic": T, "last_seq": N}`` per such topic, and
``{"floor": N}`` for the seq floor.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from feed.codec import encoded_from_json
from feed.events import EncodedEvent


@dataclass
class Snapshot:
    """What a snapshot holds: retained events per topic, and where seqs continue without them."""

    topics: dict[str, list[EncodedEvent]] = field(default_factory=dict)
    # Topics with no retained event: their seqs continue after these (tombstones).
    last_seqs: dict[str, int] = field(default_factory=dict)
    floor: int = 0


def save(
    path: str | Path,
    events: Iterable[EncodedEvent],
    last_seqs: Mapping[str, int] | None = None,
    floor: int = 0,
) -> int:
    """Write ``events`` (then the seq marks) atomically; returns how many events were written."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    n = 0
    with tmp.open("wb") as f:
        for event in events:
            f.write(event.json + b"\n")
            n += 1
        for topic, last_seq in (last_seqs or {}).items():
            f.write(orjson.dumps({"topic": topic, "last_seq": last_seq}) + b"\n")
        if floor:
            f.write(orjson.dumps({"floor": floor}) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return n


def load(path: str | Path) -> Snapshot:
    """Events per topic, in seq order, and the seq marks; a missing file is an empty snapshot."""
    target = Path(path)
    snap = Snapshot()
    if not target.exists():
        return snap
    topics = snap.topics
    for lineno, line in enumerate(target.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        obj = orjson.loads(line)
        try:
            if "floor" in obj:
                snap.floor = int(obj["floor"])
                continue
            if "last_seq" in obj:
                snap.last_seqs[str(obj["topic"])] = int(obj["last_seq"])
                continue
            topic, seq, ts_ns = str(obj["topic"]), int(obj["seq"]), int(obj["ts_ns"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{target}:{lineno}: not an event") from None
        events = topics.setdefault(topic, [])
        if events and seq != events[-1].seq + 1:
            raise ValueError(f"{target}:{lineno}: seq {seq} does not follow {events[-1].seq}")
        events.append(encoded_from_json(topic, seq, ts_ns, line))
    return snap
