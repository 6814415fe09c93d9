"""feed.wire.sse, fed bytes: the field grammar, every split point, encoder round trips."""

from __future__ import annotations

import random

import pytest

from feed.codec import control, encode_event
from feed.wire.sse import (
    MAX_LINE,
    SSEParser,
    comment,
    event_block,
    named_block,
    retry_block,
)

STREAM = (
    b"\xef\xbb\xbfretry: 1500\r\n\r\n"
    b": keep-alive\n\n"
    b'event: ready\ndata: {"cursor": 3}\nid: 3\n\n'
    b"data: line one\rdata:line two\r\n\r\n"
    b"id: bad\0id\nevent: x\n\n"  # the NUL id is ignored; the event name alone is reported
    b"retry: soon\nfoo: bar\n\n"  # a non-numeric retry and an unknown field set nothing
    b'data: {"seq": 4}\nid: 4\n\n'
    b"data\n\n"  # a field name without a colon: data is the empty string, still an event
)

Row = tuple[str, bytes, bytes | None, int | None, bool]


def _parse(chunks: list[bytes]) -> list[Row]:
    parser = SSEParser()
    return [(m.event, m.data, m.id, m.retry, m.is_event) for c in chunks for m in parser.feed(c)]


EXPECTED: list[Row] = [
    ("message", b"", None, 1500, False),
    ("ready", b'{"cursor": 3}', b"3", None, True),
    ("message", b"line one\nline two", b"3", None, True),
    ("x", b"", b"3", None, False),
    ("message", b'{"seq": 4}', b"4", None, True),
    ("message", b"", b"4", None, True),
]


def test_whole_stream_parses_per_the_grammar() -> None:
    """BOM, CR/LF/CRLF line ends, comments, multi-line data, ignored NUL ids and bad retries."""
    assert _parse([STREAM]) == EXPECTED


@pytest.mark.parametrize("cut", range(0, len(STREAM) + 1))
def test_any_split_point_gives_the_same_messages(cut: int) -> None:
    """A read boundary anywhere (inside CRLF, inside the BOM) changes nothing."""
    assert _parse([STREAM[:cut], STREAM[cut:]]) == EXPECTED


def test_byte_at_a_time_gives_the_same_messages() -> None:
    """One byte per read is the worst split of all."""
    assert _parse([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_retry_only_block_sets_the_reconnection_time() -> None:
    """The server's first block is ``retry:`` alone: reported, not an event, and kept."""
    parser = SSEParser()
    (msg,) = parser.feed(retry_block(2500))
    assert (msg.retry, msg.is_event, parser.retry) == (2500, False, 2500)
    (event,) = parser.feed(b"data: x\n\n")
    assert (event.retry, parser.retry) == (None, 2500)  # retry persists on the stream


def test_last_event_id_persists_and_an_id_only_block_moves_it() -> None:
    """The id buffer is not reset at dispatch (WHATWG); an id-only block still sets it."""
    parser = SSEParser()
    parser.feed(b"id: 5\ndata: a\n\n")
    parser.feed(b"id: 6\n\n")
    assert parser.last_event_id == b"6"
    (msg,) = parser.feed(b"data: b\n\n")
    assert msg.id == b"6"


def test_comments_and_blank_lines_alone_report_nothing() -> None:
    """Keep-alive comments and stray blank lines are not blocks."""
    assert _parse([comment(b"ping") + comment() + b"\n\n\r\n"]) == []


def test_only_one_leading_space_is_dropped_and_only_one_bom() -> None:
    """``data:  x`` keeps one space; a BOM after the first is data."""
    assert _parse([b"\xef\xbb\xbfdata:  x\n\n"])[0][1] == b" x"
    assert _parse([b"data: \xef\xbb\xbfx\n\n"])[0][1] == b"\xef\xbb\xbfx"


def test_endless_line_is_refused() -> None:
    """A peer that never ends a line cannot grow the buffer without bound."""
    parser = SSEParser()
    with pytest.raises(ValueError, match="longer than"):
        for _ in range(MAX_LINE // 65536 + 2):
            parser.feed(b"x" * 65536)


def test_encoded_blocks_round_trip() -> None:
    """What the server writes (events, named control events, retry, comments) parses back."""
    event = encode_event("t", 9, 1, {"k": "v"})
    stream = (
        retry_block(1000)
        + comment(b"ping")
        + named_block("ready", control("ready", cursor=8), 8)
        + event.sse
        + event_block(None, b"{}")
        + named_block("end", control("end", reason="shutdown"))
    )
    got = _parse([stream])
    assert [(e, d, i) for e, d, i, _r, _ev in got] == [
        ("message", b"", None),
        ("ready", b'{"type":"ready","cursor":8}', b"8"),
        ("message", event.json, b"9"),
        ("message", b"{}", b"9"),
        ("end", b'{"type":"end","reason":"shutdown"}', b"9"),
    ]
    assert event.sse == event_block(9, event.json)


def test_random_streams_split_randomly_parse_the_same() -> None:
    """Seeded random event streams, cut at random points, give the messages one read gives."""
    rng = random.Random(9)
    for _ in range(50):
        blocks = [
            event_block(rng.choice([None, rng.randrange(1 << 40)]), rng.randbytes(8).hex().encode())
            for _ in range(rng.randrange(1, 20))
        ]
        stream = b"".join(blocks).replace(b"\n", rng.choice([b"\n", b"\r\n", b"\r"]))
        whole = _parse([stream])
        assert len(whole) == len(blocks)
        cuts = sorted(rng.sample(range(len(stream)), min(5, len(stream))))
        edges = [0, *cuts, len(stream)]
        assert _parse([stream[a:b] for a, b in zip(edges, edges[1:], strict=False)]) == whole


def test_a_cr_only_stream_dispatches_without_waiting_for_more_bytes() -> None:
    """The last event of a read that ends in CR is out at once; an LF in the next read is not
    a second line end."""
    parser = SSEParser()
    assert [m.data for m in parser.feed(b"data: a\r\r")] == [b"a"]
    assert parser.feed(b"\ndata: b\r\n\r\n")[0].data == b"b"
