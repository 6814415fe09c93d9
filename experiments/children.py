"""Child processes of a run: servers and load generators, started and always stopped by PID.

Every child gets its own session (process group), so stopping it also stops anything it spawned,
and nothing else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from experiments.cpuclock import tree_cpu_s
from servers.launch import child_env

ROOT = Path(__file__).resolve().parent.parent


def spawn(
    argv: Sequence[str],
    *,
    into: list[subprocess.Popen[str]],
    env: dict[str, str] | None = None,
    log: Path | None = None,
    pipes: bool = False,
) -> subprocess.Popen[str]:
    """Start ``argv`` in its own session, from the repository root, and append it to ``into``.

    Ctrl-C is held back until the child is in ``into``: a KeyboardInterrupt raised inside
    ``Popen`` (after the fork) would leave a running child that nobody knows to stop.
    """
    pending: list[int] = []
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: pending.append(1)) if main else None
    out = open(log, "a") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env=child_env(env),
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipes else out,
            stderr=out,
            text=True,
            start_new_session=True,
        )
        into.append(proc)
        return proc
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]
        if main:
            signal.signal(signal.SIGINT, previous)
        if pending:
            raise KeyboardInterrupt


def stop(proc: subprocess.Popen[str], timeout: float = 5.0) -> None:
    """SIGTERM the child's process group, SIGKILL after ``timeout``; close its pipes."""
    try:
        _stop(proc, timeout)
    finally:
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _stop(proc: subprocess.Popen[str], timeout: float) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


def wait_healthy(
    url: str,
    proc: subprocess.Popen[str],
    timeout: float = 30.0,
    verify: ssl.SSLContext | bool = True,
) -> None:
    """Poll ``/healthz`` of a foreign server (Node, Granian) until it answers 200; fail early if
    the process died (``verify``: the client context of an https server). The lab's own server
    waits in ``servers.launch.ServerProcess``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before /healthz answered")
        try:
            r = httpx.get(url + "/healthz", timeout=1.0, trust_env=False, verify=verify)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url}/healthz did not answer within {timeout:.0f} s")


def python_server_args(rate: float, size: int, topic: str) -> list[str]:
    """Flags of the lab's server (``servers.launch.ServerProcess(args=...)``) in a bench run."""
    return [
        "--rate", f"{rate:g}", "--size", str(size), "--topic", topic, "--log-level", "warning",
        "--admin",  # the bench pauses and restarts the ticker (experiments/cells.py)
    ]  # fmt: skip


def granian_server_command(port: int) -> list[str]:
    """The lab's app under Granian (one worker, uvloop, HTTP/1.1 like uvicorn).

    The ticker and every other setting come from ``PUSHLAB_*`` in the environment. Granian
    caps concurrent requests per worker at ``backlog / workers`` (1,024) by default, and an open
    stream is a request: the cap is lifted to match uvicorn, which has none.
    """
    return [
        sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--loop", "uvloop",
        "--http", "1", "--no-access-log", "--log-level", "warning",
        "--backlog", "2048", "--backpressure", "100000", "experiments.granian_app:app",
    ]  # fmt: skip


@dataclass
class CpuMeter:
    """CPU seconds of some processes (and their children) between :meth:`start` and :meth:`stop`
    (``experiments.cpuclock.tree_cpu_s``: ns resolution)."""

    pids: list[int]
    _t0: float = 0.0
    _cpu0: dict[int, float] | None = None

    def _sample(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                out[pid] = tree_cpu_s(pid)
        return out

    def start(self) -> None:
        self._t0, self._cpu0 = time.perf_counter(), self._sample()

    def stop(self) -> tuple[float, dict[int, float]]:
        """Wall seconds, and CPU seconds per pid."""
        wall = time.perf_counter() - self._t0
        now, before = self._sample(), self._cpu0 or {}
        return wall, {pid: now[pid] - before.get(pid, 0.0) for pid in now}


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children."""
    p = psutil.Process(pid)
    total = p.memory_info().rss
    for c in p.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += c.memory_info().rss
    return int(total)
