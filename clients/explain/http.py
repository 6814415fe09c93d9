"""Sans-I/O HTTP pieces: the Sec-WebSocket-Accept maths, heads, chunked bodies, SSE lines."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RFC6455_SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC6455_SAMPLE_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


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


def upgrade_request(host: str, target: str, key: str, extra: dict[str, str] | None = None) -> bytes:
    """A minimal, valid WebSocket opening handshake request."""
    headers = {
        "Host": host,
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        **(extra or {}),
    }
    lines = [f"GET {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def get_request(host: str, target: str, extra: dict[str, str] | None = None) -> bytes:
    """A keep-alive HTTP/1.1 GET."""
    headers = {"Host": host, "Accept": "*/*", **(extra or {})}
    lines = [f"GET {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Head:
    """A parsed HTTP response head; header names lower-cased, repeated ones joined with ', '."""

    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "headers": self.headers}


def split_head(buf: bytes) -> tuple[Head, bytes] | None:
    """``(head, rest)`` once ``buf`` holds a full response head, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    raw, rest = buf[: end + 4], buf[end + 4 :]
    lines = raw[:end].decode("latin-1").split("\r\n")
    _version, status, *reason = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return Head(int(status), reason[0] if reason else "", headers, raw), rest


def dechunk(buf: bytes, partial: bool = False) -> tuple[bytes, int, bool]:
    """Decode a chunked body prefix: ``(payload, framing bytes, finished)``.

    An incomplete last chunk is left out, or with ``partial`` its bytes so far are included
    (for showing a stream cut off mid-chunk).
    """
    payload, framing, pos = b"", 0, 0
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return payload, framing, False
        size = int(buf[pos:eol].split(b";")[0], 16)
        if len(buf) < eol + 2 + size + 2:
            if partial:
                payload += buf[eol + 2 : eol + 2 + size]
                framing += eol + 2 - pos
            return payload, framing, False
        framing += eol + 2 - pos + 2
        payload += buf[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2
        if size == 0:
            return payload, framing, True


SSE_FIELDS = {
    "id": "sets the last event ID (sent back as Last-Event-ID on reconnect)",
    "event": "event type (addEventListener name; default 'message')",
    "data": "one line of the event's data (several data lines join with \\n)",
    "retry": "reconnection delay in ms for EventSource",
}


def annotate_sse(text: str) -> list[dict[str, str]]:
    """Each line of an event stream with what it means (WHATWG HTML §9.2.6 parsing rules)."""
    out = []
    for line in re.split(r"\r\n|\r|\n", text):  # CRLF, lone CR and LF all end a line
        if line == "":
            out.append({"line": "", "kind": "blank", "meaning": "dispatch the event built so far"})
        elif line.startswith(":"):
            out.append(
                {"line": line, "kind": "comment", "meaning": "ignored by clients: keep-alive"}
            )
        else:
            name, _, value = line.partition(":")
            meaning = SSE_FIELDS.get(name, "unknown field: ignored")
            # Exactly one space after the colon is dropped; any further spaces are data.
            value = value.removeprefix(" ")
            out.append({"line": line, "kind": name, "meaning": meaning, "value": value})
    if out and out[-1]["kind"] == "blank":
        out.pop()  # the split after the final "\n\n" adds one empty string too many
    return out
