"""The machine's own ceiling: the same frames to the same number of sockets, one ``send`` each.

A writer process accepts ``sockets`` loopback connections and, for each event, calls ``send``
once per socket with a ready-made WebSocket text frame of a 64-byte event (no framework, no
event loop, no encoding per write); a reader process drains them all with ``epoll``. Writes/s
and writer CPU per write are what one core here can do at the least user-space work per
delivery: every server's knee and CPU per delivery read as a fraction of it. The reader is a
separate process on its own loopback source address, as the load generators are.

``python -m experiments.capacity.calibration read HOST PORT N`` is the reader.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time

from experiments.capacity.cells import CalibrationRecord
from experiments.countwire import auto_source
from experiments.cpuclock import process_cpu_s

# What the servers write per delivery: a text frame (2-byte header) carrying one event of the
# feed's shape with a 64-byte payload (feed/ticker.py pads with "x").
PAYLOAD = (
    b'{"topic":"ticks","seq":1234567,"ts_ns":1733300000000000000,"data":{"i":1234567,"pad":"'
    + b"x" * 64
    + b'"}}'
)


def _text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented RFC 6455 text frame (payloads under 64 KiB)."""
    n = len(payload)
    head = bytes([0x81, n]) if n < 126 else bytes([0x81, 126]) + n.to_bytes(2)
    return head + payload


FRAME = _text_frame(PAYLOAD)
ACCEPT_TIMEOUT_S = 30.0


def measure(sockets: int, duration_s: float) -> CalibrationRecord:
    """Writes/s and CPU per write for ``sockets`` connections over ``duration_s`` of writing."""
    with socket.create_server(("127.0.0.1", 0), backlog=min(sockets, 4096)) as listener:
        port = listener.getsockname()[1]
        argv = [sys.executable, "-m", "experiments.capacity.calibration", "read", "127.0.0.1",
                str(port), str(sockets)]  # fmt: skip
        reader = subprocess.Popen(argv)
        conns: list[socket.socket] = []
        try:
            listener.settimeout(ACCEPT_TIMEOUT_S)
            while len(conns) < sockets:
                conns.append(listener.accept()[0])
            for c in conns:
                c.settimeout(None)
            r0, w0, t0 = process_cpu_s(reader.pid), process_cpu_s(os.getpid()), time.perf_counter()
            writes, end = 0, t0 + duration_s
            while time.perf_counter() < end:
                for c in conns:
                    c.send(FRAME)
                writes += len(conns)
            wall = time.perf_counter() - t0
            w1, r1 = process_cpu_s(os.getpid()), process_cpu_s(reader.pid)
        finally:
            for c in conns:
                c.close()
            try:
                reader.wait(10)
            except subprocess.TimeoutExpired:
                reader.kill()
                reader.wait()
    cpu = w1 - w0
    return {
        "sockets": sockets, "frame_bytes": len(FRAME), "writes": writes, "wall_s": wall,
        "writer_cpu_s": cpu, "reader_cpu_s": r1 - r0, "writes_per_s": writes / wall,
        "writes_per_core_s": writes / cpu if cpu > 0 else float("nan"),
        "cpu_us_per_write": 1e6 * cpu / writes if writes else float("nan"),
    }  # fmt: skip


def read(host: str, port: int, n: int) -> None:
    """Connect ``n`` sockets from this process's own source address and drain them to EOF."""
    source = auto_source(os.getpid())
    ep = select.epoll()
    socks: dict[int, socket.socket] = {}
    for _ in range(n):
        s = socket.socket()
        s.bind((source, 0))
        s.connect((host, port))
        s.setblocking(False)
        socks[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLIN)
    while socks:
        for fd, _ in ep.poll(1.0):
            try:
                data = socks[fd].recv(1 << 18)
            except BlockingIOError:
                continue
            if not data:
                ep.unregister(fd)
                socks.pop(fd).close()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "read":
        read(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit("usage: python -m experiments.capacity.calibration read HOST PORT N")
