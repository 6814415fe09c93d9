"""Encoding once, decoding strictly."""

import pytest

from feed.codec import decode_event, encode_event, gap_from_dict, parse_cursor
from feed.events import Gap, check_topic
from feed.exceptions import BadCursor, BadTopic
from feed.wire.sse import named_block


def test_event_forms_agree():
    """JSON, text and SSE forms carry the same bytes."""
    e = encode_event("t", 3, 99, {"a": "x\ny"})
    assert e.json == b'{"topic":"t","seq":3,"ts_ns":99,"data":{"a":"x\\ny"}}'
    assert e.text == e.json.decode()
    assert e.sse == b"id: 3\ndata: " + e.json + b"\n\n"
    assert b"\n" not in e.json


def test_decode_roundtrip():
    """An encoded event decodes to the same fields."""
    ev = decode_event(encode_event("t", 3, 99, [1, 2]).json)
    assert (ev.topic, ev.seq, ev.ts_ns, ev.data) == ("t", 3, 99, [1, 2])


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b'{"type":"ready"}',
        b'{"topic":"t","seq":"1","ts_ns":1}',
        b'{"topic":"t","seq":0,"ts_ns":1}',
        b'{"topic":"t","seq":true,"ts_ns":1}',
        b"not json",
    ],
)
def test_decode_rejects_non_events(raw):
    """Control messages, wrong types and garbage are not events."""
    with pytest.raises(ValueError):
        decode_event(raw)


@pytest.mark.parametrize("value,expected", [(None, None), ("0", 0), ("42", 42), (" 7 ", 7)])
def test_parse_cursor_accepts(value, expected):
    """Non-negative integers (and absence) are cursors."""
    assert parse_cursor(value) == expected


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "", "1e3", "٣", str(2**63)])
def test_parse_cursor_rejects(value):
    """Anything else is a BadCursor (a ValueError)."""
    with pytest.raises(BadCursor):
        parse_cursor(value)


def test_gap_roundtrip():
    """The gap signal survives its JSON form."""
    g = Gap("t", 5, 21, 30, "expired", 20)
    d = g.as_dict()
    assert d["recovered"] is False and d["type"] == "gap"
    assert gap_from_dict(d) == g


def test_sse_control_frames():
    """Named control events carry an id only when they move the cursor."""
    assert named_block("end", b"{}") == b"event: end\ndata: {}\n\n"
    assert named_block("ready", b"{}", 4) == b"id: 4\nevent: ready\ndata: {}\n\n"


@pytest.mark.parametrize("topic", ["", "a b", "x" * 129, "é", "a/b"])
def test_bad_topics(topic):
    """Topics outside the alphabet or length are refused."""
    with pytest.raises(BadTopic):
        check_topic(topic)
