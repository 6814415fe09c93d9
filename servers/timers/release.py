"""Letting go of a connection whose peer stopped reading (the send watchdog fired).

Ending the ASGI task is not enough: uvicorn's transport keeps the socket while its write buffer
is not empty, the buffer never drains for a peer that does not read, and the kernel's send queue
(megabytes on loopback) stays with it — the connection stays ESTABLISHED for ever. So after the
goodbye (a close frame, ``event: end``) has had ``send_close_timeout_s`` to leave:

- if everything written has left the kernel, the socket is closed normally (the peer reads the
  goodbye, then EOF);
- otherwise it is reset: ``SO_LINGER`` 0 then ``transport.abort()``, so the fd, uvicorn's buffer
  and the kernel's queue are freed at once. A plain close would leave an orphan in FIN_WAIT1
  holding the queue until the kernel's retries run out (what Node does here).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios
from typing import Any

_POLL_S = 0.02


def unsent(transport: Any) -> int:
    """Bytes written but not yet acknowledged out: uvicorn's buffer plus the kernel's queue."""
    pending = int(transport.get_write_buffer_size())
    sock = transport.get_extra_info("socket")
    if sock is None or sock.fileno() < 0:
        return pending
    with contextlib.suppress(OSError):
        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        pending += struct.unpack("i", queued)[0]
    return pending


async def release(transport: Any, wait_s: float) -> bool:
    """Close ``transport`` once what was written has gone, or reset it after ``wait_s``.

    Returns True when the connection was reset.
    """
    if transport is None:
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while unsent(transport) and loop.time() < deadline:
        await asyncio.sleep(_POLL_S)
    stuck = unsent(transport) > 0
    if stuck:
        sock = transport.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return stuck
