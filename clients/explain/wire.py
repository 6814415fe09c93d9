"""A blocking loopback socket that keeps every byte it sent and received, for display."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from feed.wire.http1 import ChunkedDecoder, Head, split_head
from feed.wire.ws import Decoded, FrameReader

LOOPBACK = ("127.", "localhost", "::1", "[::1]")


def host_port(url: str) -> tuple[str, int]:
    """``(host, port)`` of an http:// URL; refuses anything but loopback (the lab's rule)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http" or not host.startswith(LOOPBACK):
        raise ValueError(f"explain talks plain HTTP to loopback only, not {url!r}")
    return host, parts.port or 80


class Wire:
    """One TCP connection; :attr:`sent` and :attr:`received` total the bytes each way."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.host, self.port = host_port(url)
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.sent = 0
        self.received = 0
        self.local_port = int(self.sock.getsockname()[1])

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += len(data)

    def _recv(self, deadline: float) -> bool:
        """Read once; False at EOF or when ``deadline`` passes."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        self.received += len(chunk)
        self.buf += chunk
        return bool(chunk)

    def read_head(self) -> Head:
        """The next response head; its body bytes stay in :attr:`buf`."""
        deadline = time.monotonic() + self.timeout
        while (got := split_head(self.buf)) is None:
            if not self._recv(deadline):
                raise ConnectionError("no complete HTTP response head")
        head, self.buf = got
        return head

    def read_body(self, head: Head) -> tuple[bytes, bytes]:
        """``(raw body bytes, payload)`` of a Content-Length or chunked response."""
        deadline = time.monotonic() + self.timeout
        if "content-length" in head.headers:
            n = int(head.headers["content-length"])
            while len(self.buf) < n and self._recv(deadline):
                pass
            raw, self.buf = self.buf[:n], self.buf[n:]
            return raw, raw
        if head.headers.get("transfer-encoding") == "chunked":
            decoder = ChunkedDecoder()
            raw, parts = self.buf, [decoder.feed(self.buf)]
            while not decoder.done:
                self.buf = b""
                if not self._recv(deadline):
                    raise ConnectionError("chunked body did not finish")
                raw += self.buf
                parts.append(decoder.feed(self.buf))
            self.buf = decoder.rest
            return raw[: len(raw) - len(decoder.rest)], b"".join(parts)
        return b"", b""

    def read_for(self, seconds: float, enough: int | None = None) -> bytes:
        """Everything that arrives within ``seconds`` (or once ``enough`` bytes are buffered)."""
        deadline = time.monotonic() + seconds
        while (enough is None or len(self.buf) < enough) and self._recv(deadline):
            pass
        data, self.buf = self.buf, b""
        return data

    def read_frames(self, reader: FrameReader, count: int, seconds: float) -> list[Decoded]:
        """At least ``count`` complete frames, or what arrived within ``seconds``."""
        deadline = time.monotonic() + seconds
        reader.feed(self.buf)
        self.buf = b""
        got = reader.frames()
        while len(got) < count and self._recv(deadline):
            reader.feed(self.buf)
            self.buf = b""
            got += reader.frames()
        return got

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
