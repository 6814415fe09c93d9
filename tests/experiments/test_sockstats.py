"""The kernel's per-socket byte counters, read through ss."""

import socket
import subprocess
import threading

from experiments import sockstats
from tests.support import wait_until

SAMPLE = """0      0      127.0.0.1:45990 127.0.0.1:8000
\t cubic wscale:7,7 rto:204 bytes_sent:21 bytes_acked:22 bytes_received:6 segs_out:4 data_segs_in:3
0      0      127.0.0.1:45992 127.0.0.1:9999
\t cubic bytes_sent:5 bytes_received:5
0      0      127.0.0.1:45994 127.0.0.1:8000
\t cubic rto:204 segs_out:1
40     7      127.0.0.1:45996 127.0.0.1:8000
\t cubic bytes_sent:100 bytes_received:500 notsent:7
"""


def test_parse_keeps_only_the_server_port():
    """Sockets to other ports are ignored; a counter ss leaves out is zero."""
    assert sockstats.parse(SAMPLE, 8000) == {
        45990: (21, 6, 3),
        45994: (0, 0, 0),
        45996: (107, 460, 0),
    }


def test_delta_counts_new_and_closed_connections():
    """A new socket counts from zero; a vanished one is reported as closed."""
    t = sockstats.delta({1: (10, 100, 4), 2: (5, 5, 1)}, {1: (15, 300, 9), 3: (7, 70, 2)})
    assert (t.up, t.down, t.connections, t.closed, t.down_segments) == (12, 270, 2, 1, 7)


def _recv_q(port: int) -> int:
    out = subprocess.run(
        ["ss", "-tnH", "state", "established", f"( dport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]) if out else -1


def test_counts_exact_bytes_on_a_real_connection():
    """Bytes the client wrote, and bytes it has read (not merely received), are counted exactly."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted = []
    t = threading.Thread(target=lambda: accepted.append(server.accept()[0]))
    t.start()
    client = socket.create_connection(("127.0.0.1", port))
    t.join(5)
    peer = accepted[0]
    try:
        before = sockstats.snapshot(port)
        client.sendall(b"x" * 1000)
        got = b""
        while len(got) < 1000:
            got += peer.recv(4096)
        peer.sendall(b"y" * 2345)
        # Arrived but not yet read by the client: not counted (it sits in Recv-Q).
        wait_until(lambda: _recv_q(port) == 2345, what="2345 bytes queued")
        assert sockstats.delta(before, sockstats.snapshot(port)).down == 0
        got = b""
        while len(got) < 2345:
            got += client.recv(4096)
        d = sockstats.delta(before, sockstats.snapshot(port))
        assert (d.up, d.down, d.connections, d.closed) == (1000, 2345, 1, 0)
        # One sendall of 2,345 bytes on loopback (MSS ~64 KiB): one data segment.
        assert d.down_segments == 1
    finally:
        client.close(), peer.close(), server.close()
