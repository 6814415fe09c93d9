"""feed.wire.ws, fed bytes: round trips, every split point, and agreement with websockets."""

from __future__ import annotations

import base64
import random

import pytest
from websockets.frames import Close, Frame, Opcode
from websockets.utils import accept_key as websockets_accept_key

from feed.wire.http1 import parse_request_head
from feed.wire.ws import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    RFC6455_SAMPLE_ACCEPT,
    RFC6455_SAMPLE_KEY,
    TEXT,
    FrameReader,
    accept_key,
    accept_steps,
    client_frame,
    close_payload,
    decode_frame,
    encode_frame,
    mask_bytes,
    new_ws_key,
    upgrade_request,
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


def _mixed_stream() -> tuple[bytes, list[tuple[int, bool, bytes, bool]]]:
    """Frames of every kind and length form, masked and not, with what each should decode to."""
    spec = [
        (TEXT, True, b"", None),
        (TEXT, False, b"a" * 125, b"k3y!"),
        (CONTINUATION, True, b"b" * 126, None),
        (BINARY, True, bytes(range(256)) * 300, b"\x00\xff\x10\x01"),
        (PING, True, b"p", b"abcd"),
        (PONG, True, b"", None),
        (CLOSE, True, close_payload(1000, "bye"), b"wxyz"),
    ]
    stream = b"".join(encode_frame(op, data, fin=fin, mask_key=key) for op, fin, data, key in spec)
    return stream, [(op, fin, data, key is not None) for op, fin, data, key in spec]


def _decoded(reader: FrameReader) -> list[tuple[int, bool, bytes, bool]]:
    return [(f.opcode, f.fin, f.payload, f.masked) for f in reader.frames()]


def test_every_split_point_decodes_the_same_frames():
    """Two reads cut anywhere in a mixed stream give the frames one read gives."""
    stream, want = _mixed_stream()
    cuts = sorted(set(range(0, 700)) | set(range(len(stream) - 300, len(stream) + 1)))
    for cut in cuts:
        reader = FrameReader()
        reader.feed(stream[:cut])
        got = _decoded(reader)
        reader.feed(stream[cut:])
        got += _decoded(reader)
        assert got == want, cut
        assert reader.pending == 0


def test_random_frames_round_trip():
    """Seeded random frames (opcode, FIN, mask, every length form) decode to themselves."""
    rng = random.Random(6455)
    for _ in range(300):
        opcode = rng.choice([TEXT, BINARY, CONTINUATION, PING, PONG, CLOSE])
        control = opcode >= 0x8
        size = rng.choice([0, 1, 125]) if control else rng.choice([0, 5, 125, 126, 65535, 65536])
        payload = rng.randbytes(size)
        fin = True if control else rng.random() < 0.5
        key = rng.randbytes(4) if rng.random() < 0.5 else None
        rsv1 = not control and rng.random() < 0.2
        raw = encode_frame(opcode, payload, fin=fin, mask_key=key, rsv1=rsv1)
        got = decode_frame(raw + b"trailing")
        assert got is not None
        frame, end = got
        assert end == len(raw) and frame.raw == raw
        assert (frame.opcode, frame.fin, frame.rsv1, frame.payload) == (opcode, fin, rsv1, payload)
        assert frame.mask_key == key
        for cut in (1, len(raw) // 2, len(raw) - 1):
            assert decode_frame(raw[:cut]) is None


def test_client_frames_are_masked_with_a_fresh_key():
    """What a client sends is masked, with a new key each time, and decodes back."""
    one, two = client_frame(TEXT, b"hello"), client_frame(TEXT, b"hello")
    assert one != two
    for raw in (one, two):
        frame, _ = decode_frame(raw) or (None, 0)
        assert frame is not None and frame.masked and frame.payload == b"hello"


def test_unknown_opcode_is_refused():
    """Reserved opcodes cannot be encoded (they would make a peer fail the connection)."""
    with pytest.raises(ValueError, match="opcode"):
        encode_frame(0x3, b"")


def test_rfc6455_sample_key_gives_the_rfc_accept():
    """dGhlIHNhbXBsZSBub25jZQ== gives s3pPLMBiTxaQ9kYGzzhZRbK+xOo= (RFC 6455 §1.3)."""
    steps = accept_steps(RFC6455_SAMPLE_KEY)
    assert steps["accept"] == RFC6455_SAMPLE_ACCEPT == accept_key(RFC6455_SAMPLE_KEY)
    assert steps["sha1_hex"] == base64.b64decode(RFC6455_SAMPLE_ACCEPT).hex()
    assert base64.b64decode(RFC6455_SAMPLE_KEY) == b"the sample nonce"


def test_accept_matches_websockets_for_random_keys():
    """Our accept equals websockets' accept_key for fresh random keys."""
    for _ in range(20):
        key = new_ws_key()
        assert len(base64.b64decode(key)) == 16
        assert accept_key(key) == websockets_accept_key(key)


def test_upgrade_request_is_a_valid_head():
    """The upgrade request parses as an HTTP/1.1 GET with every handshake field."""
    raw = upgrade_request("h:1", "/ws?topic=t", "a2V5", {"Sec-WebSocket-Protocol": "pushlab.v1"})
    head = parse_request_head(raw)
    assert (head.method, head.target) == ("GET", "/ws?topic=t")
    assert head.headers == {
        "host": "h:1",
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-key": "a2V5",
        "sec-websocket-version": "13",
        "sec-websocket-protocol": "pushlab.v1",
    }
