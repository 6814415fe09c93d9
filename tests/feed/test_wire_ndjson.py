"""feed.wire.ndjson: lines out exactly as written, however the bytes are split."""

from __future__ import annotations

import pytest

from feed.wire.ndjson import LineSplitter, encode_line, encode_lines


def test_encode_is_one_line_per_object():
    """A batch is the same bytes as its lines one by one."""
    assert encode_line(b"{}") == b"{}\n"
    assert encode_lines([b'{"a":1}', b"{}"]) == encode_line(b'{"a":1}') + encode_line(b"{}")


def test_lines_split_across_every_boundary():
    """Fed one byte at a time or whole, the same lines come out, and nothing early."""
    stream = encode_lines([b'{"type":"ready","cursor":0}', b'{"seq":1}', b'{"seq":2}'])
    whole = LineSplitter().feed(stream)
    assert whole == [b'{"type":"ready","cursor":0}', b'{"seq":1}', b'{"seq":2}']
    splitter, out = LineSplitter(), []
    for i in range(len(stream)):
        got = splitter.feed(stream[i : i + 1])
        assert got == [] or stream[i : i + 1] == b"\n"
        out += got
    assert out == whole and splitter.pending == 0


def test_crlf_and_blank_lines_are_tolerated():
    """Another server's CRLF endings and blank keep-alive lines yield only the objects."""
    assert LineSplitter().feed(b'{"a":1}\r\n\r\n\n{"b":2}\r\n{"c"') == [b'{"a":1}', b'{"b":2}']


def test_a_line_longer_than_the_bound_is_refused():
    """An endless line cannot grow the buffer without bound."""
    splitter = LineSplitter(max_line=8)
    assert splitter.feed(b"12345678") == []
    with pytest.raises(ValueError, match="longer than 8"):
        splitter.feed(b"9")
