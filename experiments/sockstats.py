"""Bytes on the wire, counted by the kernel: ``ss -tin`` on the client side of each connection.

Why the kernel's counters and not a counting proxy: a proxy on loopback adds a hop, a process and
CPU to every byte, which changes the latency and CPU figures of the same run; ``tcp_info``'s
``bytes_sent``/``bytes_received`` (Linux >= 4.19) are the counters the socket keeps anyway, they
cost nothing while the cell runs, and they see every client (asyncio, Locust, browser) and every
server (Python, Node) alike. They count TCP payload: HTTP headers, chunk framing and WebSocket
frame headers included; IP/TCP headers excluded.

What is counted is what the client application has written and read by the moment of the
snapshot: ``bytes_sent + notsent`` (bytes the app handed to the kernel) and ``bytes_received -
Recv-Q`` (bytes the app has taken out of the kernel). A load client that stalls for a moment
under a busy machine leaves bytes in Recv-Q; counting them would charge events it has not yet
stamped, and the per-event figure would swing with the machine's load.

A snapshot maps each client socket (its local port) to ``(written, read)``. The delta between two
snapshots is exact for connections alive at both; a connection opened in between counts from zero;
one closed in between loses its last bytes, so :func:`delta` reports how many closed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

_SS = shutil.which("ss") or "/usr/bin/ss"
_ADDR = re.compile(r"^(\d+)\s+(\d+)\s+\S+:(\d+)\s+\S+:(\d+)\s*$")
_SENT = re.compile(r"\bbytes_sent:(\d+)")
_RECV = re.compile(r"\bbytes_received:(\d+)")
_NOTSENT = re.compile(r"\bnotsent:(\d+)")
_DATA_SEGS_IN = re.compile(r"\bdata_segs_in:(\d+)")

# Per client socket: (bytes written, bytes read, data segments received).
Snapshot = dict[int, tuple[int, int, int]]


@dataclass(frozen=True)
class Traffic:
    """Bytes between two snapshots: client->server (up) and server->client (down)."""

    up: int
    down: int
    connections: int
    closed: int
    # TCP segments with data from the server (arrived, read or not): how many writes reached
    # the wire per event, after any coalescing in the server or in its kernel.
    down_segments: int = 0


def available() -> bool:
    """True when ``ss`` exists and reports byte counters."""
    try:
        out = subprocess.run([_SS, "-tinH"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0


def ss(*args: str) -> str:
    """``ss`` with ``args`` (TCP, numeric, no header): its output; the one way the lab asks it."""
    return subprocess.run(
        [_SS, "-tnH", *args], capture_output=True, text=True, timeout=10, check=True
    ).stdout


def snapshot(server_port: int) -> Snapshot:
    """Byte counters of every established client socket connected to ``server_port``."""
    return parse(ss("-i", "state", "established", f"( dport = :{server_port} )"), server_port)


def parse(text: str, server_port: int) -> Snapshot:
    """Parse ``ss -tinH`` output: an address line, then an indented info line, per socket."""
    snap: Snapshot = {}
    local: int | None = None
    recv_q = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            m = _ADDR.search(line.strip())
            local = int(m.group(3)) if m and int(m.group(4)) == server_port else None
            recv_q = int(m.group(1)) if m else 0
            continue
        if local is not None:
            written = _num(_SENT, line) + _num(_NOTSENT, line)
            snap[local] = (written, _num(_RECV, line) - recv_q, _num(_DATA_SEGS_IN, line))
            local = None
    return snap


def _num(pattern: re.Pattern[str], line: str) -> int:
    # ss leaves a counter out while it is zero.
    m = pattern.search(line)
    return int(m.group(1)) if m else 0


def delta(before: Snapshot, after: Snapshot) -> Traffic:
    """Traffic between two snapshots (see the module docstring for closed connections)."""
    up = down = segs = 0
    for port, (sent, recv, seg) in after.items():
        s0, r0, g0 = before.get(port, (0, 0, 0))
        if sent < s0 or recv < r0 or seg < g0:  # the port was reused by a new connection
            s0 = r0 = g0 = 0
        up += sent - s0
        down += recv - r0
        segs += seg - g0
    closed = sum(1 for port in before if port not in after)
    return Traffic(up, down, len(after), closed, segs)
