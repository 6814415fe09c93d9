"""Sans-I/O RFC 6455: frames (encode, incremental decode) and the opening handshake's key maths.

One codec for every side of the lab: the server's cached event frames (:mod:`feed.frames`), the
clients' and explainers' masked frames, the load generators and the tests. Decoded frames keep
every header field so the explainers can show the bytes field by field; the tests check the
codec against ``websockets.frames`` both ways.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import asdict, dataclass
from typing import Any

from feed.wire.http1 import request_head

OPCODES = {0x0: "continuation", 0x1: "text", 0x2: "binary", 0x8: "close", 0x9: "ping", 0xA: "pong"}
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_CONTROL_PAYLOAD = 125
_HEAD7 = struct.Struct("!BB").pack
_HEAD16 = struct.Struct("!BBH").pack
_HEAD64 = struct.Struct("!BBQ").pack

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RFC6455_SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC6455_SAMPLE_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def mask_bytes(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``key`` repeated (masking and unmasking are the same)."""
    if len(key) != 4:
        raise ValueError("a masking key is 4 bytes")
    n = len(data)
    if not n:
        return b""
    # One big-integer XOR instead of a Python loop per byte (~50x faster at 64 KiB).
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's payload: 2-byte big-endian code, then the UTF-8 reason."""
    return struct.pack("!H", code) + reason.encode()


def encode_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    mask_key: bytes | None = None,
    rsv1: bool = False,
    check: bool = True,
) -> bytes:
    """One frame. Clients must pass ``mask_key`` (4 random bytes, see :func:`new_mask_key`);
    servers pass none (RFC 6455 §5.1). ``check=False`` lets a test build a frame the protocol
    forbids (reserved opcode, oversized or fragmented control frame) to see the peer refuse it."""
    n = len(payload)
    # The server's event frames (data opcode, FIN, unmasked) pass the checks in one comparison.
    if opcode > BINARY and check:
        if opcode not in OPCODES:
            raise ValueError(f"unknown opcode {opcode:#x}")
        if opcode >= CLOSE and (n > MAX_CONTROL_PAYLOAD or not fin):
            raise ValueError("control frames carry at most 125 bytes and cannot be fragmented")
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if mask_key is None:
        if n <= 125:
            return _HEAD7(first, n) + payload
        if n <= 0xFFFF:
            return _HEAD16(first, 126, n) + payload
        return _HEAD64(first, 127, n) + payload
    if n <= 125:
        head = _HEAD7(first, 0x80 | n)
    elif n <= 0xFFFF:
        head = _HEAD16(first, 0x80 | 126, n)
    else:
        head = _HEAD64(first, 0x80 | 127, n)
    return head + mask_key + mask_bytes(payload, mask_key)


def new_mask_key() -> bytes:
    """Four bytes from a strong source, as RFC 6455 §5.3 requires of clients."""
    return os.urandom(4)


def client_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False, check: bool = True
) -> bytes:
    """A masked frame with a fresh key: what a client sends."""
    return encode_frame(opcode, payload, fin=fin, mask_key=new_mask_key(), rsv1=rsv1, check=check)


@dataclass(frozen=True)
class Decoded:
    """One frame, field by field; ``raw`` is the whole frame as it was on the wire."""

    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool
    opcode: int
    masked: bool
    length_form: str  # "7-bit", "16-bit" or "64-bit": how the payload length was written
    payload_length: int
    mask_key: bytes | None
    payload: bytes  # unmasked
    header: bytes
    raw: bytes

    @property
    def kind(self) -> str:
        return OPCODES.get(self.opcode, f"reserved({self.opcode:#x})")

    @property
    def close_code(self) -> int | None:
        """The close code, or None (close without a body means 1005 to the application)."""
        if self.opcode != CLOSE or len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])

    @property
    def close_reason(self) -> str | None:
        if self.opcode != CLOSE or len(self.payload) < 2:
            return None
        return self.payload[2:].decode("utf-8", "replace")

    def fields(self) -> dict[str, Any]:
        """JSON-able view: bytes as hex, text payloads also as text."""
        d = asdict(self)
        for key in ("mask_key", "payload", "header", "raw"):
            value = d[key]
            d[key] = None if value is None else value.hex(" ")
        d["kind"] = self.kind
        d["first_byte"] = f"{self.raw[0]:08b}"
        d["second_byte"] = f"{self.raw[1]:08b}"
        if self.opcode == TEXT and not self.rsv1:  # RSV1: compressed (permessage-deflate)
            d["text"] = self.payload.decode("utf-8", "replace")
        if self.opcode == CLOSE:
            d["close_code"], d["close_reason"] = self.close_code, self.close_reason
        return d


def decode_frame(buf: bytes, start: int = 0) -> tuple[Decoded, int] | None:
    """Decode the frame at ``buf[start:]``: ``(frame, end offset)``, or None if incomplete."""
    if len(buf) - start < 2:
        return None
    b0, b1 = buf[start], buf[start + 1]
    masked = bool(b1 & 0x80)
    n = b1 & 0x7F
    pos = start + 2
    form = "7-bit"
    if n == 126:
        if len(buf) < pos + 2:
            return None
        n, pos, form = struct.unpack_from("!H", buf, pos)[0], pos + 2, "16-bit"
    elif n == 127:
        if len(buf) < pos + 8:
            return None
        n, pos, form = struct.unpack_from("!Q", buf, pos)[0], pos + 8, "64-bit"
    key = None
    if masked:
        if len(buf) < pos + 4:
            return None
        key, pos = bytes(buf[pos : pos + 4]), pos + 4
    end = pos + n
    if len(buf) < end:
        return None
    body = bytes(buf[pos:end])
    frame = Decoded(
        fin=bool(b0 & 0x80),
        rsv1=bool(b0 & 0x40),
        rsv2=bool(b0 & 0x20),
        rsv3=bool(b0 & 0x10),
        opcode=b0 & 0x0F,
        masked=masked,
        length_form=form,
        payload_length=n,
        mask_key=key,
        payload=mask_bytes(body, key) if key else body,
        header=bytes(buf[start:pos]),
        raw=bytes(buf[start:end]),
    )
    return frame, end


class FrameReader:
    """Incremental decoder: :meth:`feed` bytes as they arrive, :meth:`frames` what is complete."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def pending(self) -> int:
        """Bytes held for a frame not complete yet."""
        return len(self._buf)

    def frames(self) -> list[Decoded]:
        out = []
        pos = 0
        while (got := decode_frame(self._buf, pos)) is not None:
            frame, pos = got
            out.append(frame)
        if pos:
            self._buf = self._buf[pos:]
        return out


def new_ws_key() -> str:
    """16 random bytes, base64: what a client puts in Sec-WebSocket-Key."""
    return base64.b64encode(os.urandom(16)).decode()


def accept_steps(key: str) -> dict[str, str]:
    """Sec-WebSocket-Accept for ``key``, one step per entry (RFC 6455 §4.2.2 item 5.4)."""
    concat = key + WS_GUID
    digest = hashlib.sha1(concat.encode()).digest()
    return {
        "key": key,
        "guid": WS_GUID,
        "concat": concat,
        "sha1_hex": digest.hex(),
        "accept": base64.b64encode(digest).decode(),
    }


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept a server must answer ``key`` with."""
    return accept_steps(key)["accept"]


def upgrade_request(host: str, target: str, key: str, extra: dict[str, str] | None = None) -> bytes:
    """A minimal, valid WebSocket opening handshake request."""
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        **(extra or {}),
    }
    return request_head("GET", target, host, headers)
