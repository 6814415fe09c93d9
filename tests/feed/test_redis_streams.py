"""The pure parts of the Redis layout: event bytes around the seq, entry IDs, resume rules."""

from __future__ import annotations

import orjson

from feed.codec import encode_event
from feed.history import History, resolve
from feed.redis_streams import Keys, entry_event, seq_of, split_body


def test_split_body_is_orjson_compact_form():
    """head + seq + tail is byte for byte what the memory broker encodes."""
    head, tail = split_body("t:1", 123, {"a": [1, "é"]})
    assert head + b"42" + tail == encode_event("t:1", 42, 123, {"a": [1, "é"]}).json


def test_entry_event_reuses_the_stored_bytes():
    """A stream entry becomes an event without re-encoding its JSON."""
    body = orjson.dumps({"topic": "t", "seq": 7, "ts_ns": 5, "data": None})
    event = entry_event("t", b"0-7", {b"e": body, b"t": b"5"})
    assert (event.seq, event.ts_ns, event.json) == (7, 5, body)
    assert event.sse == b"id: 7\ndata: " + body + b"\n\n"
    assert seq_of("0-123") == 123


def test_resolve_is_the_one_cursor_rule():
    """Redis answers cursors with the History's rule (one function, not a copy), whose answers
    are: served as asked, ``expired`` (resume before the oldest) or ``ahead`` (resume at last)."""
    import feed.redis_broker

    assert feed.redis_broker.resolve is resolve
    h = History("t", 10)
    for seq in range(1, 31):
        h.append(encode_event("t", seq, 0, None))
    got = {since: resolve("t", since, h.oldest_seq, h.last_seq) for since in (None, 5, 20, 30, 31)}
    assert got[None] == (30, None) and got[20] == (20, None) and got[30] == (30, None)
    assert got[5][0] == 20 and got[5][1] is not None and got[5][1].reason == "expired"
    assert got[31][0] == 20 and got[31][1] is not None and got[31][1].reason == "ahead"
    assert resolve("t", 3, None, 0)[1] is not None  # ahead of an empty topic


def test_keys_are_under_the_prefix():
    """Every key of a run starts with its prefix, so cleanup can never touch other keys."""
    keys = Keys("p1")
    names = [keys.seq("a"), keys.stream("a"), keys.wake("x"), keys.epoch, keys.floor]
    assert all(n.startswith("p1:") for n in names)
    assert keys.topic_of(keys.stream("a:b")) == "a:b"
