"""Sans-I/O HTTP/1.1 (RFC 9112): request and response heads, built and parsed; chunked bodies.

One rule for repeated header fields everywhere: their values are joined with ``", "`` in the order
received (RFC 9110 §5.3), names lower-cased. Heads are latin-1 both ways, so parse(build(x))
round-trips any byte. Requests that must be malformed on purpose (the abuse and limit tests) are
written by hand at their call site, not with this builder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from feed.wire.contract import NDJSON_TYPE, PATHS

MAX_HEAD = 16 * 1024
MAX_CHUNK_LINE = 1024
END_OF_HEAD = b"\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"


def request_head(
    method: str, target: str, host: str, headers: Mapping[str, str] | None = None
) -> bytes:
    """``METHOD target HTTP/1.1``, ``Host`` first, then ``headers`` in order, then a blank line."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def get_request(host: str, target: str, extra: Mapping[str, str] | None = None) -> bytes:
    """A keep-alive GET accepting anything (``extra`` may override ``Accept``)."""
    return request_head("GET", target, host, {"Accept": "*/*", **(extra or {})})


def sse_request(
    host: str, params: Mapping[str, str], headers: Mapping[str, str] | None = None, base: str = ""
) -> bytes:
    """``GET {base}/sse?params`` as an EventSource sends it (``Accept: text/event-stream``)."""
    target = f"{base.rstrip('/')}/sse?{urlencode(params)}"
    defaults = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
    return request_head("GET", target, host, {**defaults, **(headers or {})})


def sse_request_for(url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> bytes:
    """:func:`sse_request` for a server at ``url`` (its path is the prefix of ``/sse``)."""
    split = urlsplit(url)
    return sse_request(split.netloc, params, headers, base=split.path)


def stream_request(
    host: str, params: Mapping[str, str], headers: Mapping[str, str] | None = None, base: str = ""
) -> bytes:
    """``GET {base}/stream?params`` as a ``fetch()`` reading NDJSON sends it."""
    target = f"{base.rstrip('/')}{PATHS['stream']}?{urlencode(params)}"
    defaults = {"Accept": NDJSON_TYPE, "Cache-Control": "no-store"}
    return request_head("GET", target, host, {**defaults, **(headers or {})})


def stream_request_for(url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> bytes:
    """:func:`stream_request` for a server at ``url`` (its path is the prefix of ``/stream``)."""
    split = urlsplit(url)
    return stream_request(split.netloc, params, headers, base=split.path)


def response_head(status: int, reason: str, headers: Mapping[str, str] | None = None) -> bytes:
    """``HTTP/1.1 status reason`` and ``headers``, then the blank line."""
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Head:
    """A parsed head. Response: ``status``/``reason``; request: ``method``/``target``."""

    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""
    method: str = ""
    target: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "headers": self.headers}


def _fields(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        if not line:
            continue
        name, colon, value = line.partition(":")
        key = name.strip().lower()
        if not colon or not key or name != name.rstrip():
            raise ValueError(f"bad header line {line[:60]!r}")
        value = value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def parse_response_head(raw: bytes) -> Head:
    """A response head (with or without its blank line); ``ValueError`` if it is not one."""
    lines = raw.decode("latin-1").removesuffix("\r\n\r\n").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"bad status line {lines[0][:60]!r}")
    reason = parts[2] if len(parts) > 2 else ""
    return Head(int(parts[1]), reason, _fields(lines[1:]), raw)


def parse_request_head(raw: bytes) -> Head:
    """A request head (with or without its blank line); ``ValueError`` if it is not one."""
    lines = raw.decode("latin-1").removesuffix("\r\n\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
        raise ValueError(f"bad request line {lines[0][:60]!r}")
    return Head(0, "", _fields(lines[1:]), raw, method=parts[0], target=parts[1])


def split_head(buf: bytes, limit: int = MAX_HEAD) -> tuple[Head, bytes] | None:
    """``(response head, rest)`` once ``buf`` holds a full head, else None (``ValueError`` past
    ``limit`` bytes without one)."""
    end = buf.find(END_OF_HEAD)
    if end < 0:
        if len(buf) > limit:
            raise ValueError("response head too long")
        return None
    end += len(END_OF_HEAD)
    return parse_response_head(buf[:end]), buf[end:]


def encode_chunk(body: bytes) -> bytes:
    """``body`` as one chunk (RFC 9112 §7.1); an empty body would end the stream, so refuse it."""
    if not body:
        raise ValueError("an empty chunk is the last-chunk: use LAST_CHUNK")
    return b"%x\r\n%b\r\n" % (len(body), body)


class ChunkedDecoder:
    """Incremental chunked-body decoder (RFC 9112 §7.1).

    :meth:`feed` returns the body bytes available so far (a chunk's bytes are passed on as they
    arrive, before the chunk is complete). After the last-chunk and trailer section ``done`` is
    set and bytes past the body wait in ``rest``; ``framing`` counts the bytes that were not
    body (size lines, CRLFs, trailers).
    """

    def __init__(self) -> None:
        self._buf = b""
        self._left = 0  # body bytes left in the current chunk
        self._state = "size"  # size | data | crlf | trailer | done
        self.framing = 0
        self.done = False
        self.rest = b""

    def _line(self, pos: int) -> int:
        """End of the CRLF-terminated line at ``pos``, or -1; ``ValueError`` if too long."""
        end = self._buf.find(b"\r\n", pos)
        if end < 0 and len(self._buf) - pos > MAX_CHUNK_LINE:
            raise ValueError("chunk size line too long")
        return end

    def feed(self, data: bytes) -> bytes:
        if self.done:
            self.rest += data
            return b""
        buf = self._buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        pos, n = 0, len(buf)
        while pos < n:
            state = self._state
            if state == "data":
                take = min(self._left, n - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self._left -= take
                if not self._left:
                    self._state = "crlf"
            elif state == "crlf":
                if n - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
                pos += 2
                self.framing += 2
                self._state = "size"
            elif state == "size":
                end = self._line(pos)
                if end < 0:
                    break
                size_field = buf[pos:end].split(b";", 1)[0].strip(b" \t")
                if not size_field or size_field.strip(b"0123456789abcdefABCDEF"):
                    raise ValueError(f"bad chunk size {size_field[:20]!r}")
                self.framing += end + 2 - pos
                pos = end + 2
                self._left = int(size_field, 16)
                self._state = "data" if self._left else "trailer"
            else:  # trailer: field lines until an empty one
                end = self._line(pos)
                if end < 0:
                    break
                self.framing += end + 2 - pos
                if end == pos:
                    pos += 2
                    self._state = "done"
                    self.done = True
                    self.rest = buf[pos:]
                    pos = n
                    break
                pos = end + 2
        self._buf = buf[pos:] if not self.done else b""
        return b"".join(out)

    @property
    def pending(self) -> int:
        """Bytes held back (an incomplete size line or CRLF)."""
        return len(self._buf)
