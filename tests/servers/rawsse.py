"""An SSE (or NDJSON ``/stream``) reader on a raw socket that checks the HTTP/1.1 chunk framing
byte by byte.

Direct delivery (servers/fastpath/sse_direct.py) frames chunks itself, so tests read the wire
instead of trusting a client library to be lenient. The reader can also stop reading (a slow
client): with a small ``rcvbuf`` the kernel buffers fill and the server's writes back up.
"""

from __future__ import annotations

import asyncio
import re
import socket

from feed.wire.http1 import END_OF_HEAD, parse_response_head, request_head
from tests.support import MS

EVENT_ID = re.compile(rb"^id: (\d+)\ndata: ", re.MULTILINE)


class RawSSE:
    """``GET /sse`` by hand; :meth:`read_chunk` returns one strictly parsed chunk body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.head = b""
        self.body = b""  # every chunk body so far, concatenated
        self.ended = False  # the terminating zero-length chunk was read

    @classmethod
    async def open(
        cls,
        port: int,
        query: str,
        rcvbuf: int | None = None,
        method: str = "GET",
        path: str = "/sse",
        headers: dict[str, str] | None = None,
    ) -> RawSSE:
        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        # A small StreamReader limit, so that "not reading" soon stops reading the socket too.
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        self = cls(reader, writer)
        fields = {"Accept": "text/event-stream", **(headers or {})}
        writer.write(request_head(method, f"{path}?{query}", "x", fields))
        self.head = await reader.readuntil(END_OF_HEAD)
        return self

    @property
    def status(self) -> int:
        return parse_response_head(self.head).status

    async def read_chunk(self) -> bytes:
        """One chunk's body; asserts the ``<hex>\\r\\n<body>\\r\\n`` framing."""
        size_line = await self.reader.readuntil(b"\r\n")
        assert re.fullmatch(rb"[0-9a-f]+\r\n", size_line), size_line
        size = int(size_line[:-2], 16)
        data = await self.reader.readexactly(size + 2)
        assert data[-2:] == b"\r\n", data[-20:]
        if size == 0:
            self.ended = True
        self.body += data[:-2]
        return data[:-2]

    async def read_until(self, marker: bytes, after: int = 0, timeout: float = 10.0) -> bytes:
        """Chunks until ``marker`` is in the body past offset ``after`` (or the response ended);
        fails after ``timeout`` (x PUSHLAB_TEST_MS) seconds."""
        async with asyncio.timeout(timeout * MS):
            while marker not in self.body[after:] and not self.ended:
                await self.read_chunk()
        return self.body

    def ids(self) -> list[int]:
        """The ``id`` of every event in the body so far, in wire order."""
        return [int(m.group(1)) for m in EVENT_ID.finditer(self.body)]

    def close(self) -> None:
        self.writer.close()
