"""feed.wire.http1, fed bytes: heads built and parsed, chunks encoded and decoded at every split."""

from __future__ import annotations

import random

import h11
import pytest

from feed.wire.http1 import (
    LAST_CHUNK,
    ChunkedDecoder,
    encode_chunk,
    get_request,
    parse_request_head,
    parse_response_head,
    request_head,
    response_head,
    split_head,
    sse_request,
    sse_request_for,
)


def test_repeated_fields_join_in_order() -> None:
    """One rule for repeated header fields: values joined with ", " (RFC 9110 §5.3)."""
    raw = b"HTTP/1.1 204 No Content\r\nPushlab-Cursor: 7\r\nA: 1\r\na:  2 \r\n\r\nrest"
    head, rest = split_head(raw) or (None, b"")
    assert head is not None and rest == b"rest"
    assert (head.status, head.reason) == (204, "No Content")
    assert head.headers == {"pushlab-cursor": "7", "a": "1, 2"}


def test_split_head_waits_for_the_blank_line_and_bounds_the_wait() -> None:
    """No head before the blank line; a peer that never ends its head is refused."""
    raw = response_head(200, "OK", {"X": "1"})
    for cut in range(len(raw)):
        assert split_head(raw[:cut]) is None
    with pytest.raises(ValueError, match="too long"):
        split_head(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 100, limit=256)


@pytest.mark.parametrize(
    "bad",
    [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"],
)
def test_malformed_response_heads_are_errors(bad: bytes) -> None:
    """Not HTTP, no status code, or a field line without a colon: ValueError."""
    with pytest.raises(ValueError):
        parse_response_head(bad)


def test_space_before_the_colon_is_refused() -> None:
    """RFC 9112 §5.1: no whitespace between field name and colon (a smuggling vector)."""
    with pytest.raises(ValueError):
        parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n")


def test_request_heads_round_trip_and_h11_accepts_them() -> None:
    """Built requests parse back to the same fields, and h11 (a strict server) accepts them."""
    builds = [
        request_head("POST", "/publish?topic=t", "h:1", {"Content-Length": "0"}),
        get_request("h:1", "/poll?topic=t", {"Accept": "application/json"}),
        sse_request("h:1", {"topic": "a b"}, {"Last-Event-ID": "7"}),
        sse_request_for("http://h:1/prefix/", {"topic": "t"}, {}),
    ]
    for raw in builds:
        head = parse_request_head(raw)
        assert head.headers["host"] == "h:1"
        server = h11.Connection(h11.SERVER)
        server.receive_data(raw)
        event = server.next_event()
        assert isinstance(event, h11.Request), raw
        assert event.target.decode() == head.target
        assert {k.decode(): v.decode() for k, v in event.headers} == head.headers
    assert parse_request_head(builds[1]).headers["accept"] == "application/json"
    assert parse_request_head(builds[2]).target == "/sse?topic=a+b"
    assert parse_request_head(builds[3]).target == "/prefix/sse?topic=t"


def test_response_head_round_trips_and_h11_accepts_it() -> None:
    """A built response parses back, and h11 as a client reads the same status and fields."""
    raw = response_head(101, "Switching Protocols", {"Upgrade": "websocket", "X-É": "é"})
    head = parse_response_head(raw)
    assert (head.status, head.reason, head.headers["x-é"]) == (101, "Switching Protocols", "é")
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.receive_data(response_head(200, "OK", {"Content-Length": "0", "A": "1"}))
    event = client.next_event()
    assert isinstance(event, h11.Response) and event.status_code == 200


BODY = b"4\r\nWiki\r\n7;ext=1\r\npedia i\r\nB\r\nn \r\nchunks.\r\n0\r\nTrailer: x\r\n\r\nNEXT"


@pytest.mark.parametrize("cut", range(len(BODY) + 1))
def test_chunked_decoding_at_every_split_point(cut: int) -> None:
    """RFC 9112's example body (extension, trailer), cut anywhere: same body, rest and framing."""
    dec = ChunkedDecoder()
    out = dec.feed(BODY[:cut]) + dec.feed(BODY[cut:])
    assert out == b"Wikipedia in \r\nchunks." and dec.done and dec.rest == b"NEXT"
    assert dec.framing == len(BODY) - len(out) - len(b"NEXT")


def test_chunked_decoding_byte_at_a_time_passes_bytes_on_early() -> None:
    """A chunk's bytes come out as they arrive, before the chunk is complete."""
    dec = ChunkedDecoder()
    got = [dec.feed(BODY[i : i + 1]) for i in range(len(BODY))]
    assert got[3:7] == [b"W", b"i", b"k", b"i"]
    assert b"".join(got) == b"Wikipedia in \r\nchunks." and dec.done


@pytest.mark.parametrize("bad", [b"zz\r\nab\r\n", b"2\r\nabXX", b"9" * 2000, b"\r\n", b"-1\r\n"])
def test_malformed_chunking_is_an_error(bad: bytes) -> None:
    """A bad size, a missing CRLF after data, or an endless size line raise ValueError."""
    with pytest.raises(ValueError):
        ChunkedDecoder().feed(bad)


def test_encoded_chunks_round_trip_through_the_decoder_and_h11() -> None:
    """Seeded random bodies as chunks decode to themselves, here and in h11."""
    rng = random.Random(9112)
    bodies = [rng.randbytes(rng.choice([1, 15, 16, 255, 4096, 70_000])) for _ in range(40)]
    wire = b"".join(map(encode_chunk, bodies)) + LAST_CHUNK
    dec = ChunkedDecoder()
    pos, out = 0, []
    while pos < len(wire):
        step = rng.randrange(1, 3000)
        out.append(dec.feed(wire[pos : pos + step]))
        pos += step
    assert b"".join(out) == b"".join(bodies) and dec.done
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(response_head(200, "OK", {"Transfer-Encoding": "chunked"}) + wire)
    got = b""
    while not isinstance(event := client.next_event(), h11.EndOfMessage):
        if isinstance(event, h11.Data):
            got += event.data
    assert got == b"".join(bodies)


def test_an_empty_chunk_is_not_a_chunk() -> None:
    """Encoding b"" would write the last-chunk and end the stream: refused."""
    with pytest.raises(ValueError):
        encode_chunk(b"")
