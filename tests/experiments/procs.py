"""Servers as subprocesses on free loopback ports (Locust and Node tests need real processes)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support import MS, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class ServerProcess:
    """A server command run with ``{port}`` filled in; stopped by its pid."""

    argv: list[str]
    cwd: Path = ROOT
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # A file, not a pipe: nobody drains a pipe while the test runs, and a full one blocks.
    stderr: tempfile._TemporaryFileWrapper[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        self.port = self.port or free_port()
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        self.stderr = tempfile.NamedTemporaryFile(prefix="server-", suffix=".log")
        self.proc = subprocess.Popen(
            argv, cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=self.stderr
        )
        wait_until(lambda: self._alive() and _healthy(self.url), 20, f"server {argv[:3]}")
        return self

    def start_with_port(self) -> ServerProcess:
        """Start with a free port substituted for the ``--port`` value of ``argv``."""
        i = self.argv.index("--port")
        self.argv[i + 1] = "{port}"
        return self.start()

    def _alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            err = open(self.stderr.name).read() if self.stderr else ""
            raise AssertionError(f"server exited {self.proc.returncode}: {err[-2000:]}")
        return True

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 10 s; returns the exit code."""
        if self.proc is None:
            return None
        self.proc.terminate()
        try:
            return self.proc.wait(10 * MS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)
        finally:
            if self.stderr:
                self.stderr.close()


def pushlab_server(rate: float, *extra: str) -> ServerProcess:
    """``python -m servers`` with the ticker at ``rate`` events/s."""
    # --admin: tests kick streams and steer the ticker, as the bench does.
    argv = [sys.executable, "-m", "servers", "--port", "{port}", "--rate", str(rate), "--admin"]
    return ServerProcess([*argv, "--log-level", "warning", *extra])
