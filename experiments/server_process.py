"""The pushlab server in a child process, on a free loopback port: what `pushlab serve` runs.

Experiments measure a real server in its own process (its own event loop and CPU), not a thread
of the measuring process. :class:`ServerProcess` runs ``python -m servers`` (the same
``build_config`` and ``PushlabServer`` as ``pushlab serve``: WebSocket protocol class, limits,
drain), with its options as ``PUSHLAB_*`` settings, waits until the port accepts connections and
stops it by PID. The child's environment is this process's, minus ``PUSHLAB_*`` names that are
not settings (``processes.inherited_env``), plus the options.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any

from experiments.processes import inherited_env
from feed.settings import Settings
from servers.background import free_port

# What `pushlab serve` uses (one source of truth: Settings.ws_impl), so `pushlab rtt` measures
# the implementation the lab serves with.
DEFAULT_WS = Settings().ws_impl


@dataclass
class ServerProcess:
    """``with ServerProcess(ws="wsproto") as srv: srv.url`` — ``python -m servers`` on 127.0.0.1."""

    ws: str = DEFAULT_WS
    ws_max_size: int | None = None
    # Off like `pushlab serve`; compression measurements turn it on (the client still decides
    # per connection whether to offer it).
    per_message_deflate: bool = False
    env: dict[str, str] = field(default_factory=dict)
    log: IO[Any] | None = None
    start_timeout_s: float = 20.0
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def settings_env(self) -> dict[str, str]:
        """The options as the ``PUSHLAB_*`` settings the child reads."""
        env = {
            "PUSHLAB_TICKER_RATE": "0",
            "PUSHLAB_WS_IMPL": self.ws,
            "PUSHLAB_WS_COMPRESSION": "1" if self.per_message_deflate else "0",
            "PUSHLAB_LOG_LEVEL": "warning",
        }
        if self.ws_max_size is not None:
            env["PUSHLAB_WS_MAX_MESSAGE_BYTES"] = str(self.ws_max_size)
        return env | self.env

    def start(self) -> ServerProcess:
        """Spawn the child and wait (bounded) until its port accepts a connection."""
        self.port = self.port or free_port()
        cmd = [sys.executable, "-m", "servers", "--host", "127.0.0.1", "--port", str(self.port)]
        env = inherited_env() | self.settings_env()
        out = self.log if self.log is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {cmd}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"no listener after {self.start_timeout_s}s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; only this child, by PID."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
