"""``pushlab serve --workers N``: N server processes on one port, each its own listener.

The parent binds N listening sockets on the port with ``SO_REUSEPORT`` and hands one to each
worker (``python -m servers --fd K``, :func:`servers.launch.spawn_worker`); the kernel spreads
new connections over them by a hash of the 4-tuple, so no process accepts for another and none
is a single accept bottleneck (uvicorn's ``--workers`` shares one inherited socket instead). All
N listen before any worker starts: a connection that comes early waits in its worker's backlog
instead of going to whichever worker happened to start first. The open-files limit here is per
process (20,000), so N workers hold about N times the connections of one.

Every worker serves the same feed only through a shared broker: with ``memory://`` each would
have its own seqs and history, so N > 1 refuses it. The ticker runs in every worker (each
publishes through the broker): give ``rate / N`` to keep the total rate.

The parent only starts the workers (settings passed as ``PUSHLAB_*``, the way every child here
gets them: :func:`servers.launch.child_env`), forwards SIGTERM/SIGINT, and exits when they have;
a worker that dies stops the rest.
"""

from __future__ import annotations

import signal
import socket
import time
from types import FrameType

from feed.settings import Settings
from servers.launch import bind, spawn_worker

POLL_S = 0.2
BACKLOG = 2048


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket with ``SO_REUSEPORT`` on ``host:port``."""
    sock = bind(host, port, reuse_port=True)
    sock.listen(BACKLOG)
    return sock


def check(settings: Settings, workers: int) -> None:
    """ValueError when ``workers`` processes could not serve one feed with ``settings``."""
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if workers > 1 and not settings.broker.startswith("redis"):
        raise ValueError(
            f"--workers {workers} needs a shared broker (--broker redis://...): with "
            f"{settings.broker} each process would serve its own feed"
        )
    if workers > 1 and settings.port == 0:
        raise ValueError("--workers needs a fixed --port (each worker binds it with SO_REUSEPORT)")


def run_workers(settings: Settings, workers: int, held: socket.socket | None = None) -> int:
    """Start ``workers`` children on ``settings.port``; wait; return the first non-zero code.

    ``held``: the socket a launcher bound for this server (``--fd``, with SO_REUSEPORT); it
    reserved the port until the workers' sockets took it.
    """
    check(settings, workers)
    socks = [reuse_port_socket(settings.host, settings.port) for _ in range(workers)]
    procs = [spawn_worker(s, settings) for s in socks]
    for s in [*socks, *([held] if held is not None else [])]:
        s.close()  # each worker has its copy; ours would keep a dead worker's queue open
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while any(p.poll() is None for p in procs):
        if not stopping and any(p.poll() is not None for p in procs):
            stop(signal.SIGTERM, None)  # one worker gone: the port would serve a partial fleet
        time.sleep(POLL_S)
    codes = [p.returncode for p in procs]
    return 0 if stopping and all(c in (0, -signal.SIGTERM) for c in codes) else max(codes, key=abs)
