"""Framing formulas against the protocols' rules and the server's own encoder."""

from experiments import formulas
from feed.codec import encode_event
from feed.frames import ndjson_chunk


def test_ws_header_sizes():
    """RFC 6455: 2, 4 or 10 header bytes by payload length, plus 4 for a client mask."""
    assert [formulas.ws_header(n) for n in (0, 125, 126, 65535, 65536)] == [2, 2, 4, 4, 10]
    assert formulas.ws_header(10, masked=True) == 6


def test_chunk_overhead():
    """A chunk costs its hex length plus two CRLFs."""
    assert formulas.chunk_overhead(0x8B) == len("8b\r\n\r\n")
    assert formulas.chunk_overhead(0x1000) == len("1000\r\n\r\n")


def test_sse_event_matches_the_server_encoding():
    """The SSE formula gives the length of the bytes the server really writes per event."""
    ev = encode_event("ticks", 12345, 1795629003808889305, {"price": 101.2})
    assert formulas.sse_event_len(len(ev.json), len("12345")) == len(ev.sse)


def test_poll_costs_headers_per_request():
    """Polling pays request and response headers per request; fewer events per request cost more."""
    busy = formulas.Shape(event_len=120, seq_len=3, events=100, requests=10, empty=0)
    idle = formulas.Shape(event_len=120, seq_len=3, events=100, requests=100, empty=50)
    up_b, down_b = formulas.per_event("poll", busy)
    up_i, down_i = formulas.per_event("poll", idle)
    assert up_i == 10 * up_b and down_i > down_b > 120
    assert formulas.per_event("ws", busy) == (0.0, 122.0)


def test_stream_event_matches_the_server_chunk():
    """The /stream formula is the length of the chunk the server writes per event."""
    ev = encode_event("ticks", 12345, 1795629003808889305, {"price": 101.2})
    shape = formulas.Shape(event_len=len(ev.json), seq_len=5, events=1)
    assert formulas.per_event("stream", shape) == (0.0, float(len(ndjson_chunk(ev))))
