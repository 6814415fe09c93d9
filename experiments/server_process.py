"""The pushlab app under uvicorn in a child process, on a free loopback port.

Experiments and the conformance runner measure a real server in its own process (its own event
loop and CPU), not a thread of the measuring process. ``python -m experiments.server_process``
is the child's entry point; :class:`ServerProcess` starts it, waits until the port accepts
connections and stops it by PID.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any

from experiments.processes import inherited_env
from feed.settings import WS_IMPLS, Settings
from servers.background import free_port

# What `pushlab serve` uses (one source of truth: Settings.ws_impl, chosen in
# docs/conformance.md), so `pushlab rtt` measures the implementation the lab serves with.
DEFAULT_WS = Settings().ws_impl


@dataclass
class ServerProcess:
    """``with ServerProcess(ws="wsproto") as srv: srv.url`` — a uvicorn child on 127.0.0.1."""

    ws: str = DEFAULT_WS
    ws_max_size: int | None = None
    # Off like `pushlab serve`; the conformance run turns it on to exercise sections 12-13.
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

    def start(self) -> ServerProcess:
        """Spawn the child and wait (bounded) until its port accepts a connection."""
        self.port = self.port or free_port()
        cmd = [sys.executable, "-m", "experiments.server_process", "--port", str(self.port)]
        cmd += ["--ws", self.ws]
        if self.ws_max_size is not None:
            cmd += ["--ws-max-size", str(self.ws_max_size)]
        if self.per_message_deflate:
            cmd.append("--per-message-deflate")
        env = {**inherited_env(), "PUSHLAB_TICKER_RATE": "0", **self.env}
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


def main(argv: list[str] | None = None) -> None:
    """Child entry point: the app from ``PUSHLAB_*`` settings, uvicorn options from flags."""
    import uvicorn

    from feed.settings import Settings
    from servers.app import create_app
    from servers.ws_protocol import uvicorn_ws

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws", choices=WS_IMPLS, default=DEFAULT_WS)
    parser.add_argument("--ws-max-size", type=int, help="default: PUSHLAB_WS_MAX_MESSAGE_BYTES")
    parser.add_argument("--per-message-deflate", action="store_true", help="offer compression")
    args = parser.parse_args(argv)
    # POST /echo's body cap is the same setting as the WebSocket message cap.
    settings = Settings.from_env(
        host="127.0.0.1", port=args.port, ws_max_message_bytes=args.ws_max_size
    )
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=args.port,
        ws=uvicorn_ws(args.ws),
        ws_max_size=args.ws_max_size or settings.ws_max_message_bytes,
        ws_ping_interval=None,
        ws_per_message_deflate=args.per_message_deflate,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
