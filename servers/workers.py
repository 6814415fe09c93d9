"""``pushlab serve --workers N``: N server processes on one port, each its own listener.

Each worker binds its own socket with ``SO_REUSEPORT``; the kernel spreads new connections over
them by a hash of the 4-tuple, so no process accepts for another and none is a single accept
bottleneck (uvicorn's ``--workers`` shares one inherited socket instead). The open-files limit
here is per process (20,000), so N workers hold about N times the connections of one.

Every worker serves the same feed only through a shared broker: with ``memory://`` each would
have its own seqs and history, so N > 1 refuses it. The ticker runs in every worker (each
publishes through the broker): give ``rate / N`` to keep the total rate.

The parent only starts the workers (settings passed as ``PUSHLAB_*``, the way every child here
gets them), forwards SIGTERM/SIGINT, and exits when they have; a worker that dies stops the rest.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from feed.settings import ENV_PREFIX, Settings

POLL_S = 0.2


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket with ``SO_REUSEPORT`` on ``host:port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the ``PUSHLAB_*`` variables a child reads back into the same values."""
    env = {}
    for name, v in settings.as_dict().items():
        if name == "auth_secret":
            v = settings.auth_secret  # as_dict redacts it for metadata; the worker needs it
        env[f"{ENV_PREFIX}{name.upper()}"] = ("1" if v else "0") if isinstance(v, bool) else str(v)
    return env


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


def run_workers(settings: Settings, workers: int) -> int:
    """Start ``workers`` children on ``settings.port``; wait; return the first non-zero code."""
    check(settings, workers)
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env |= settings_env(settings)
    cmd = [sys.executable, "-m", "servers", "--reuse-port"]
    procs = [subprocess.Popen(cmd, env=env) for _ in range(workers)]
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
