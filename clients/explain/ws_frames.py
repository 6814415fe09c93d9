"""``pushlab explain frames``: text, binary, ping, pong, fragmented and close frames, byte by byte.

One raw connection to ``/ws``; each step sends frames we encoded ourselves (masked, as a client
must) and decodes what the server sends back (unmasked, as a server must).
"""

from __future__ import annotations

import zlib
from typing import Any

from clients.explain.handshake import open_ws, ws_target
from clients.explain.wire import Wire
from feed.wire.ws import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    Decoded,
    FrameReader,
    close_payload,
    decode_frame,
    encode_frame,
    new_mask_key,
)

# (description, frames to send as (opcode, payload, fin), frames expected back)
STEPS: list[tuple[str, list[tuple[int, bytes, bool]], int]] = [
    ("text frame: an application-level ping", [(TEXT, b'{"type":"ping","id":1}', True)], 1),
    ("binary frame: this feed only speaks text", [(BINARY, b"\x01\x02\x03", True)], 1),
    ("ping control frame: the server's WebSocket layer answers", [(PING, b"hello", True)], 1),
    ("unsolicited pong: allowed, and nothing answers it", [(PONG, b"unsolicited", True)], 0),
    (
        "one message in two frames: FIN=0 text, then FIN=1 continuation",
        [(TEXT, b'{"type":"ping",', False), (CONTINUATION, b'"id":2}', True)],
        1,
    ),
    (
        "a 200-byte id: the reply's length no longer fits 7 bits",
        [(TEXT, b'{"type":"ping","id":"' + b"x" * 200 + b'"}', True)],
        1,
    ),
    (
        "close frame 1000 'bye': the server answers with its own close",
        [(CLOSE, close_payload(1000, "bye"), True)],
        1,
    ),
]


def length_forms() -> list[dict[str, Any]]:
    """The three ways a payload length is written, shown on unmasked binary frames."""
    out = []
    for n in (5, 200, 70_000):
        frame, _ = decode_frame(encode_frame(BINARY, bytes(n))) or (None, 0)
        assert frame is not None
        out.append(
            {"payload_length": n, "form": frame.length_form, "header": frame.header.hex(" ")}
        )
    return out


class Inflater:
    """permessage-deflate receive side (RFC 7692), with context takeover across messages."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(-zlib.MAX_WBITS)

    def __call__(self, frame: Decoded) -> bytes:
        return self._z.decompress(frame.payload + b"\x00\x00\xff\xff")


def explain(url: str, topic: str = "explain", deflate: bool = False) -> dict[str, Any]:
    """Run :data:`STEPS` on one connection; every frame both ways, decoded."""
    extra = {"Sec-WebSocket-Extensions": "permessage-deflate"} if deflate else None
    wire, handshake = open_ws(url, ws_target(topic), extra=extra)
    if handshake["status"] != 101:
        wire.close()
        raise ConnectionError(f"upgrade refused: HTTP {handshake['status']}")
    reader = FrameReader()
    inflate = Inflater() if handshake["extensions"] else None
    with wire:
        steps = [_step(wire, reader, inflate, "first frame from the server", [], 1)]
        for description, frames, expect in STEPS:
            steps.append(_step(wire, reader, inflate, description, frames, expect))
    return {
        "url": url,
        "handshake_status": handshake["status"],
        "extensions": handshake["extensions"],
        "steps": steps,
        "length_forms": length_forms(),
        "bytes_sent": wire.sent,
        "bytes_received": wire.received,
    }


def _step(
    wire: Wire,
    reader: FrameReader,
    inflate: Inflater | None,
    description: str,
    frames: list[tuple[int, bytes, bool]],
    expect: int,
) -> dict[str, Any]:
    sent = []
    for opcode, payload, fin in frames:
        raw = encode_frame(opcode, payload, fin=fin, mask_key=new_mask_key())
        wire.send(raw)
        decoded = decode_frame(raw)
        assert decoded is not None
        sent.append(decoded[0].fields())
    # Wait briefly even when nothing is expected, to show that nothing came.
    got = wire.read_frames(reader, expect, 5.0 if expect else 0.3)
    received = []
    for frame in got:
        fields = frame.fields()
        if inflate is not None and frame.rsv1:
            fields["inflated"] = inflate(frame).decode("utf-8", "replace")
        received.append(fields)
    return {"step": description, "sent": sent, "received": received}


def _frame_lines(arrow: str, f: dict[str, Any]) -> list[str]:
    mask = f"MASK=1 key={f['mask_key']}" if f["masked"] else "MASK=0"
    rsv = "".join("1" if f[k] else "0" for k in ("rsv1", "rsv2", "rsv3"))
    lines = [
        f"  {arrow} {f['kind']:<12} FIN={int(f['fin'])} RSV={rsv} opcode={f['opcode']:#x} {mask} "
        f"len={f['payload_length']} ({f['length_form']})",
        f"      bytes 0-1: {f['first_byte']} {f['second_byte']}   header: {f['header']}",
    ]
    if "text" in f:
        lines.append(f"      text: {f['text'][:100]}")
    elif f["kind"] == "close":
        lines.append(f"      close code {f['close_code']}, reason {f['close_reason']!r}")
    elif f["payload"]:
        lines.append(f"      payload (unmasked): {f['payload'][:60]}")
    if "inflated" in f:
        lines.append(f"      inflated (RSV1 = compressed): {f['inflated'][:100]}")
    return lines


def render(report: dict[str, Any]) -> str:
    """Terminal text."""
    lines = [f"101 after the handshake; extensions: {report['extensions'] or 'none'}"]
    for step in report["steps"]:
        lines.append(f"\n# {step['step']}")
        for f in step["sent"]:
            lines += _frame_lines("C->S", f)
        for f in step["received"]:
            lines += _frame_lines("S->C", f)
        if not step["received"]:
            lines.append("  (nothing came back)")
    lines.append("\n# payload length forms (unmasked binary frames)")
    for form in report["length_forms"]:
        lines.append(
            f"  {form['payload_length']:>6} bytes: {form['form']:<7} header {form['header']}"
        )
    lines.append(f"\nbytes sent {report['bytes_sent']}, received {report['bytes_received']}")
    return "\n".join(lines)
