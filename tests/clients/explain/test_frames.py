"""The hand-written frame codec agrees with the websockets library, both ways."""

from __future__ import annotations

import pytest
from websockets.frames import Close, Frame, Opcode

from clients.explain.frames import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    TEXT,
    FrameReader,
    close_payload,
    decode_frame,
    encode_frame,
    mask_bytes,
)

SIZES = [0, 1, 125, 126, 200, 65535, 65536, 70_000]


def parse_with_websockets(data: bytes, mask: bool) -> Frame:
    """Run websockets' frame parser over ``data``."""
    pos = 0

    def read_exact(n: int):  # the generator protocol websockets' sans-I/O parser expects
        nonlocal pos
        chunk = data[pos : pos + n]
        pos += n
        return chunk
        yield

    gen = Frame.parse(read_exact, mask=mask)
    try:
        next(gen)
    except StopIteration as done:
        return done.value
    raise AssertionError("parser wanted more bytes")


@pytest.mark.parametrize("size", SIZES)
def test_unmasked_frames_are_byte_identical_to_websockets(size):
    """Server-side (unmasked) frames match websockets' serialisation byte for byte."""
    payload = bytes(i % 251 for i in range(size))
    theirs = Frame(Opcode.BINARY, payload).serialize(mask=False)
    assert encode_frame(BINARY, payload) == theirs


@pytest.mark.parametrize("size", SIZES)
def test_masked_frames_parse_in_websockets(size):
    """Client-side (masked) frames we encode are parsed by websockets to the same payload."""
    payload = bytes(i % 251 for i in range(size))
    raw = encode_frame(TEXT if size < 200 else BINARY, payload, mask_key=b"\x01\x02\x03\x04")
    frame = parse_with_websockets(raw, mask=True)
    assert frame.data == payload
    assert frame.fin


@pytest.mark.parametrize("size", SIZES)
def test_we_decode_websockets_masked_frames(size):
    """Frames masked by websockets (random key) decode to the original fields."""
    payload = bytes(i % 251 for i in range(size))
    raw = Frame(Opcode.BINARY, payload, fin=False).serialize(mask=True)
    got = decode_frame(raw)
    assert got is not None
    frame, used = got
    assert used == len(raw)
    assert (frame.opcode, frame.fin, frame.masked, frame.payload) == (BINARY, False, True, payload)
    assert frame.mask_key == raw[len(frame.header) - 4 : len(frame.header)]
    expected_form = "7-bit" if size <= 125 else "16-bit" if size <= 65535 else "64-bit"
    assert frame.length_form == expected_form
    assert frame.payload_length == size


def test_close_frame_code_and_reason_match_websockets():
    """A close payload we build parses in websockets, and theirs decodes here."""
    assert Close.parse(close_payload(1001, "going away")) == Close(1001, "going away")
    raw = Frame(Opcode.CLOSE, Close(1008, "policy").serialize()).serialize(mask=False)
    frame, _ = decode_frame(raw) or (None, 0)
    assert frame is not None
    assert (frame.kind, frame.close_code, frame.close_reason) == ("close", 1008, "policy")


def test_masking_is_its_own_inverse_and_changes_the_bytes():
    """XOR with the key twice gives the data back; once, the bytes on the wire differ."""
    data = b'{"type":"ping"}'
    key = b"\xa1\xb2\xc3\xd4"
    assert mask_bytes(data, key) != data
    assert mask_bytes(mask_bytes(data, key), key) == data


def test_control_frames_are_limited():
    """Control frames over 125 bytes or fragmented are refused by the encoder."""
    with pytest.raises(ValueError):
        encode_frame(PING, bytes(126))
    with pytest.raises(ValueError):
        encode_frame(CLOSE, b"", fin=False)


def test_reader_reassembles_frames_split_anywhere():
    """The incremental reader yields each frame once, whatever the byte boundaries."""
    stream = (
        encode_frame(TEXT, b"hello", fin=False, mask_key=b"abcd")
        + encode_frame(CONTINUATION, b" world", mask_key=b"efgh")
        + encode_frame(BINARY, bytes(300))
    )
    reader = FrameReader()
    frames = []
    for i in range(len(stream)):
        reader.feed(stream[i : i + 1])
        frames += reader.frames()
    assert [f.kind for f in frames] == ["text", "continuation", "binary"]
    assert frames[0].payload + frames[1].payload == b"hello world"
    assert decode_frame(stream[:1]) is None
