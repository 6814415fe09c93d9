"""The kernel's socket table for one server port (``/proc/net/tcp``): what a test asserts when
it says a connection was released, whatever the server process believes."""

from __future__ import annotations

import os

# /proc/net/tcp "st" column (include/net/tcp_states.h).
STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}


def server_side(port: int) -> dict[int, tuple[str, int]]:
    """The server's end of each connection on ``port``: peer port -> (state, send-queue bytes)."""
    table: dict[int, tuple[str, int]] = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(path):
            continue
        with open(path) as f:
            next(f)
            for line in f:
                cols = line.split()
                local, remote, state, queues = cols[1], cols[2], cols[3], cols[4]
                if int(local.rsplit(":", 1)[1], 16) != port or state == "0A":
                    continue
                peer = int(remote.rsplit(":", 1)[1], 16)
                table[peer] = (STATES.get(state, state), int(queues.split(":")[0], 16))
    return table


def established(port: int) -> set[int]:
    """Peer ports of the server's ESTABLISHED (or half-closed by the peer) sockets on ``port``."""
    return {p for p, (st, _) in server_side(port).items() if st in ("ESTABLISHED", "CLOSE_WAIT")}


def open_fds() -> int:
    """File descriptors of this process (in-thread servers share it with the test)."""
    return len(os.listdir("/proc/self/fd"))
