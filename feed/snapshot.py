"""Save the in-memory history at shutdown and load it at start, so a restart keeps seqs.

Without it a restarted memory broker starts every topic at seq 1 again and resuming clients get
an ``ahead`` gap: they lose nothing that was still retained only if the history survives. The
file is JSON lines, one event (its wire JSON) per line, topics in any order and each topic's
events consecutive and ascending; it is written to a temporary file and renamed, so a crash
mid-write leaves the previous snapshot intact.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import orjson

from feed.codec import encoded_from_json
from feed.events import EncodedEvent


def save(path: str | Path, events: Iterable[EncodedEvent]) -> int:
    """Write ``events`` atomically; returns how many were written."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    n = 0
    with tmp.open("wb") as f:
        for event in events:
            f.write(event.json + b"\n")
            n += 1
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return n


def load(path: str | Path) -> dict[str, list[EncodedEvent]]:
    """Events per topic, in seq order; a missing file is an empty snapshot."""
    target = Path(path)
    if not target.exists():
        return {}
    topics: dict[str, list[EncodedEvent]] = {}
    for lineno, line in enumerate(target.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        obj = orjson.loads(line)
        try:
            topic, seq, ts_ns = str(obj["topic"]), int(obj["seq"]), int(obj["ts_ns"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{target}:{lineno}: not an event") from None
        events = topics.setdefault(topic, [])
        if events and seq != events[-1].seq + 1:
            raise ValueError(f"{target}:{lineno}: seq {seq} does not follow {events[-1].seq}")
        events.append(encoded_from_json(topic, seq, ts_ns, line))
    return topics
