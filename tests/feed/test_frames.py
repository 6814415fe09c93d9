"""Frames built for direct delivery parse as what a standard peer expects."""

import h11
import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from feed.codec import encode_event, loads, msgpack_frame
from feed.frames import ndjson_chunk, sse_chunk, ws_binary_frame, ws_text_frame
from feed.wire.ws import TEXT, encode_frame


def _parse(raw: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(raw)
    gen = Frame.parse(reader.read_exact, mask=False, max_size=None)
    try:
        next(gen)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("frame incomplete")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
def test_ws_frame_lengths_parse_with_websockets(size: int) -> None:
    """Each length encoding (7-bit, 16-bit, 64-bit) round-trips through websockets' parser."""
    payload = b"x" * size
    frame = _parse(encode_frame(TEXT, payload))
    assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == payload
    assert not (frame.rsv1 or frame.rsv2 or frame.rsv3)


def test_event_frames_are_cached_and_carry_the_event() -> None:
    """Text and binary frames hold the JSON and MessagePack forms and are built once."""
    event = encode_event("t", 7, 123, {"a": 1})
    text = ws_text_frame(event)
    assert ws_text_frame(event) is text
    assert loads(_parse(text).data)["seq"] == 7
    binary = _parse(ws_binary_frame(event))
    assert binary.opcode is Opcode.BINARY and binary.data == msgpack_frame(event)


@pytest.mark.parametrize("form", ["sse", "ndjson"])
def test_stream_chunks_decode_as_http_chunked_body(form: str) -> None:
    """h11 reassembles the chunk into exactly the SSE frame, or the event's JSON line."""
    event = encode_event("t", 1, 2, "hi")
    chunk_of, expected = {
        "sse": (sse_chunk, event.sse),
        "ndjson": (ndjson_chunk, event.json + b"\n"),
    }[form]
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    conn.receive_data(head + chunk_of(event) + b"0\r\n\r\n")
    body = b""
    while True:
        ev = conn.next_event()
        if isinstance(ev, h11.Data):
            body += ev.data
        elif isinstance(ev, h11.EndOfMessage):
            break
    assert body == expected
    assert chunk_of(event) is chunk_of(event)
