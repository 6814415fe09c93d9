"""A deliberately dumb WebSocket peer on a raw socket: it sends exactly the bytes we build.

Libraries refuse to send invalid UTF-8 or to stop answering pings; this one does what a broken
or hostile client would, so the server's answers to it can be tested.
"""

from __future__ import annotations

import asyncio
from collections import deque

from feed.wire.http1 import END_OF_HEAD, parse_response_head
from feed.wire.ws import (
    BINARY as OP_BINARY,
    CLOSE as OP_CLOSE,
    CONTINUATION as OP_CONT,
    PING as OP_PING,
    PONG as OP_PONG,
    TEXT as OP_TEXT,
    Decoded,
    FrameReader,
    client_frame,
    new_ws_key,
    upgrade_request,
)

__all__ = ["OP_BINARY", "OP_CLOSE", "OP_CONT", "OP_PING", "OP_PONG", "OP_TEXT", "RawWS", "frame"]


def frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    """One masked client frame, unchecked: a hostile peer sends what the protocol forbids too."""
    return client_frame(opcode, payload, fin=fin, rsv1=rsv1, check=False)


class RawWS:
    """A raw TCP connection that performs the upgrade and then reads/writes frames by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self._reader = FrameReader()
        self._frames: deque[Decoded] = deque()

    @classmethod
    async def connect(
        cls, port: int, path: str, headers: dict[str, str] | None = None, rcvbuf: int | None = None
    ) -> RawWS:
        """Open and upgrade; ``status`` is 101 on success, else the HTTP refusal."""
        import socket

        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        self = cls(reader, writer)
        # ``headers`` are added to the handshake's, or replace one (e.g. Sec-WebSocket-Version).
        writer.write(upgrade_request(f"127.0.0.1:{port}", path, new_ws_key(), headers))
        head = parse_response_head(await reader.readuntil(END_OF_HEAD))
        self.status, self.headers = head.status, head.headers
        if self.status != 101 and "content-length" in self.headers:
            self.body = await reader.readexactly(int(self.headers["content-length"]))
        return self

    def send(self, opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> None:
        self.writer.write(frame(opcode, payload, fin, rsv1))

    async def recv(self) -> tuple[int, bytes]:
        """The next server frame (servers do not mask)."""
        while not self._frames:
            data = await self.reader.read(65536)
            if not data:
                raise asyncio.IncompleteReadError(b"", None)
            self._reader.feed(data)
            self._frames.extend(self._reader.frames())
        got = self._frames.popleft()
        return got.opcode, got.payload

    @property
    def buffered(self) -> int:
        """Frames read off the socket but not yet returned by :meth:`recv`, plus partial bytes."""
        return len(self._frames) + self._reader.pending

    async def close_code(self, timeout: float) -> int | None:
        """Read frames until the server's close frame; its code (None: connection just ended)."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    opcode, payload = await self.recv()
                except asyncio.IncompleteReadError:
                    return None
                if opcode == OP_CLOSE:
                    return int.from_bytes(payload[:2]) if len(payload) >= 2 else 1005

    def abort(self) -> None:
        self.writer.transport.abort()
