"""Sans-I/O Server-Sent Events (WHATWG HTML §9.2): the server's encoder, an incremental parser.

Parsing follows the spec's field grammar: lines end in CRLF, LF or a lone CR (also across reads),
one leading BOM is dropped, ``:`` starts a comment, one space after the colon is dropped, ``id``
with a NUL is ignored, ``retry`` must be all ASCII digits. Deliberate divergence: like httpx-sse
(the lab's other SSE client), a block that set any field is reported, even without ``data``, so
a caller sees a ``retry``-only block (the server's first) and an ``id``-only one; only blocks with
``data`` are events in the spec's sense (:attr:`Message.is_event`).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LINE = 1 << 20
_BOM = b"\xef\xbb\xbf"


def event_block(seq: int | None, data: bytes) -> bytes:
    """One event: ``id`` (the resume cursor; none for ``None``) and one ``data`` line.

    ``data`` must not contain a line break: event JSON is compact (see :mod:`feed.codec`).
    """
    if seq is None:
        return b"data: %b\n\n" % data
    return b"id: %d\ndata: %b\n\n" % (seq, data)


def named_block(kind: str, data: bytes, event_id: int | None = None) -> bytes:
    """A named event (``event: kind``); ``id`` only when it moves the cursor."""
    head = b"id: %d\n" % event_id if event_id is not None else b""
    return head + b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


def retry_block(ms: int) -> bytes:
    """Sets the client's reconnection delay; dispatches nothing."""
    return b"retry: %d\n\n" % ms


def comment(text: bytes = b"") -> bytes:
    """A comment block: ignored by clients, keeps an idle connection's bytes flowing."""
    return b":" + (b" " + text if text else b"") + b"\n\n"


@dataclass(frozen=True, slots=True)
class Message:
    """One block that set a field (``event`` defaults to ``message``)."""

    event: str
    data: bytes
    id: bytes | None
    retry: int | None
    is_event: bool = True  # the block had ``data``: the spec dispatches it


class SSEParser:
    """Incremental parser: bytes in, messages out. ``last_event_id`` and ``retry`` hold the
    stream's current values (they persist across blocks, as the spec says)."""

    def __init__(self) -> None:
        self._tail = b""
        self._event = b""
        self._data: list[bytes] = []
        self._block_retry: int | None = None
        self._touched = False
        self._first = True
        self._after_cr = False
        self.last_event_id: bytes | None = None
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[Message]:
        """Parse ``chunk``; a line split across reads is kept until its end arrives."""
        buf = self._tail + chunk if self._tail else chunk
        if self._first:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._tail = buf  # could still become the BOM
                return []
            self._first = False
            buf = buf.removeprefix(_BOM)
        if self._after_cr and buf[:1] == b"\n":
            buf = buf[1:]  # the LF of a CRLF split across reads: that line already ended
        if b"\r" in buf:
            # A CR ends its line at once (waiting to see whether an LF follows would hold the
            # last event of a CR-only stream back until the next read); a following LF is
            # then dropped, here or at the start of the next read.
            self._after_cr = buf.endswith(b"\r")
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        else:
            self._after_cr = False
        lines = buf.split(b"\n")
        self._tail = lines.pop()
        if len(self._tail) > MAX_LINE:
            raise ValueError(f"SSE line longer than {MAX_LINE} bytes")
        out: list[Message] = []
        for line in lines:
            if not line:
                if self._touched:
                    out.append(self._dispatch())
                continue
            if line[0] == 0x3A:  # ":" comment (keep-alive)
                continue
            name, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value
            elif name == b"id":
                if b"\0" in value:
                    continue
                self.last_event_id = value
            elif name == b"retry":
                if not (value.isdigit() and value.isascii()):
                    continue
                self._block_retry = self.retry = int(value)
            else:
                continue  # unknown field: ignored
            self._touched = True
        return out

    def _dispatch(self) -> Message:
        message = Message(
            self._event.decode(errors="replace") or "message",
            b"\n".join(self._data),
            self.last_event_id,
            self._block_retry,
            bool(self._data),
        )
        self._event, self._data, self._block_retry, self._touched = b"", [], None, False
        return message
