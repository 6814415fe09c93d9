"""Sans-I/O newline-delimited JSON (the ``/stream`` transport): the line encoder and a splitter.

One JSON object per line, each line ended by ``\\n`` (the shape of NDJSON / JSON Lines, which
Centrifugo's ``uni_http_stream`` and MCP's streamable HTTP also use). JSON text never contains
a raw line break (:mod:`feed.codec` writes compact JSON, and a line break inside a string is
escaped), so splitting on ``\\n`` is the whole framing. The splitter tolerates ``\\r\\n`` and
blank lines, and bounds a line's length, as a reader of someone else's stream must.
"""

from __future__ import annotations

MAX_LINE = 1 << 20


def encode_line(data: bytes) -> bytes:
    """One line: ``data`` (compact JSON, no line break) and ``\\n``."""
    return data + b"\n"


def encode_lines(items: list[bytes]) -> bytes:
    """Several lines in one buffer (a batch of events goes out as one write)."""
    return b"\n".join(items) + b"\n"


class LineSplitter:
    """Incremental splitter: bytes in, complete lines out (without their ``\\n`` or ``\\r``)."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._tail = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """Lines completed by ``chunk``; a line split across reads waits for its end."""
        buf = self._tail + chunk if self._tail else chunk
        lines = buf.split(b"\n")
        self._tail = lines.pop()
        if len(self._tail) > self.max_line:
            raise ValueError(f"NDJSON line longer than {self.max_line} bytes")
        return [s for line in lines if (s := line.rstrip(b"\r"))]

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held back."""
        return len(self._tail)
