"""Process plumbing for the cluster: pid files, nginx readiness, Redis keys (servers: launch)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def delete_prefix(url: str, prefix: str) -> int:
    """Delete the keys of one run (``<prefix>:*``) and nothing else; never FLUSH."""
    import redis  # imported here: only Redis runs need it

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


def stop_by_pidfiles(root: Path, timeout: float = 30.0) -> list[int]:
    """``cluster down`` from another shell: stop what ``root/pids`` records, by pid only.

    The ``up`` process (``up.pid``) is asked first, so it tears down in order and deletes the
    run's Redis keys; whatever is still recorded after that gets SIGTERM directly.
    """
    stopped = []
    up = root / "pids" / "up.pid"
    if up.exists():
        pid = int(up.read_text().strip())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
        deadline = time.monotonic() + timeout
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        up.unlink(missing_ok=True)
    for pidfile in sorted((root / "pids").glob("*.pid")):
        pid = int(pidfile.read_text().strip())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
        pidfile.unlink(missing_ok=True)
    return stopped


def _running(pid: int) -> bool:
    """True while ``pid`` exists and has not exited (an unreaped zombie counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def wait_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} is not listening on {port}")
        time.sleep(0.02)
