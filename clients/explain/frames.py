"""Sans-I/O RFC 6455 frames: encode and decode, keeping every header field for display.

Written by hand (not via ``websockets``) so the bytes can be shown field by field; the tests check
it against ``websockets.frames`` both ways.
"""

from __future__ import annotations

import os
import struct
from dataclasses import asdict, dataclass
from typing import Any

OPCODES = {0x0: "continuation", 0x1: "text", 0x2: "binary", 0x8: "close", 0x9: "ping", 0xA: "pong"}
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def mask_bytes(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``key`` repeated (masking and unmasking are the same)."""
    if len(key) != 4:
        raise ValueError("a masking key is 4 bytes")
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


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
) -> bytes:
    """One frame. Clients must pass ``mask_key`` (4 random bytes, see :func:`new_mask_key`)."""
    if opcode not in OPCODES:
        raise ValueError(f"unknown opcode {opcode:#x}")
    if opcode >= 0x8 and (len(payload) > 125 or not fin):
        raise ValueError("control frames carry at most 125 bytes and cannot be fragmented")
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    mask_bit = 0x80 if mask_key is not None else 0
    n = len(payload)
    if n <= 125:
        head += bytes([mask_bit | n])
    elif n <= 0xFFFF:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if mask_key is None:
        return head + payload
    return head + mask_key + mask_bytes(payload, mask_key)


def new_mask_key() -> bytes:
    """Four bytes from a strong source, as RFC 6455 §5.3 requires of clients."""
    return os.urandom(4)


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
        if self.opcode == TEXT and not self.rsv1:  # RSV1: compressed, see ws_frames.Inflater
            d["text"] = self.payload.decode("utf-8", "replace")
        if self.opcode == CLOSE:
            d["close_code"], d["close_reason"] = self.close_code, self.close_reason
        return d


def decode_frame(buf: bytes) -> tuple[Decoded, int] | None:
    """Decode the first frame in ``buf``: ``(frame, bytes used)``, or None if incomplete."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    masked = bool(b1 & 0x80)
    n = b1 & 0x7F
    pos = 2
    form = "7-bit"
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos, form = struct.unpack("!H", buf[2:4])[0], 4, "16-bit"
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos, form = struct.unpack("!Q", buf[2:10])[0], 10, "64-bit"
    key = None
    if masked:
        if len(buf) < pos + 4:
            return None
        key, pos = buf[pos : pos + 4], pos + 4
    end = pos + n
    if len(buf) < end:
        return None
    body = buf[pos:end]
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
        header=buf[:pos],
        raw=buf[:end],
    )
    return frame, end


class FrameReader:
    """Incremental decoder: :meth:`feed` bytes as they arrive, :meth:`frames` what is complete."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> None:
        self._buf += data

    def frames(self) -> list[Decoded]:
        out = []
        while (got := decode_frame(self._buf)) is not None:
            frame, used = got
            out.append(frame)
            self._buf = self._buf[used:]
        return out
