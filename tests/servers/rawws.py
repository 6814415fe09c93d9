"""A deliberately dumb WebSocket peer on a raw socket: it sends exactly the bytes we build.

Libraries refuse to send invalid UTF-8 or to stop answering pings; this one does what a broken
or hostile client would, so the server's answers to it can be tested.
"""

from __future__ import annotations

import asyncio
import os
import struct

from clients.explain.http import new_ws_key, upgrade_request

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    """One masked client frame."""
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawWS:
    """A raw TCP connection that performs the upgrade and then reads/writes frames by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""

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
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *rest = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        for line in rest:
            if ":" in line:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()
        if self.status != 101 and "content-length" in self.headers:
            self.body = await reader.readexactly(int(self.headers["content-length"]))
        return self

    def send(self, opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> None:
        self.writer.write(frame(opcode, payload, fin, rsv1))

    async def recv(self) -> tuple[int, bytes]:
        """The next server frame (servers do not mask)."""
        b0, b1 = await self.reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return b0 & 0x0F, await self.reader.readexactly(n)

    async def close_code(self, timeout: float) -> int | None:
        """Read frames until the server's close frame; its code (None: connection just ended)."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    opcode, payload = await self.recv()
                except asyncio.IncompleteReadError:
                    return None
                if opcode == OP_CLOSE:
                    return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else 1005

    def abort(self) -> None:
        self.writer.transport.abort()
