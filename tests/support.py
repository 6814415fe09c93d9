"""Test helpers: a real uvicorn server in a thread, condition waits, system-part checks."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn

from feed.broker import Broker
from feed.settings import SSE_IMPLS, Settings
from servers.app import create_app
from servers.background import free_port as free_port  # tests import it from here
from servers.runner import PushlabServer, build_config

IN_CI = os.environ.get("CI", "").lower() == "true"
# Scales every wait in the tests; slow machines set PUSHLAB_TEST_MS=2 or more.
MS = float(os.environ.get("PUSHLAB_TEST_MS", "1"))
FULL = os.environ.get("PUSHLAB_TEST_FULL") == "1"


def each_sse_impl(values: list[str], sse: str = "sse") -> list[Any]:
    """Parameters for ``("<name>", "sse_impl")``: each value once, and ``sse`` once per SSE
    implementation, so the SSE cases run against each while the others are not repeated."""
    default = Settings().sse_impl
    return [
        pytest.param(v, impl, id=f"{v}-{impl}" if v == sse else v)
        for v in values
        for impl in (SSE_IMPLS if v == sse else (default,))
    ]


def require(binary: str, why: str) -> str:
    """Path of a system binary; skip when missing, but fail under CI=true."""
    path = shutil.which(binary) or next(
        (p for p in (f"/usr/sbin/{binary}", f"/usr/bin/{binary}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        message = f"{binary} is not installed ({why}); run `make system`"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``cond`` until true; fail with ``what`` after ``timeout * MS`` seconds."""
    deadline = time.monotonic() + timeout * MS
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


async def async_wait_until(
    cond: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Async flavour of :func:`wait_until`; ``cond`` may be a coroutine function."""
    deadline = time.monotonic() + timeout * MS
    while True:
        result = cond()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@dataclass
class LiveServer:
    """uvicorn serving ``create_app(settings)`` on a loopback port, in a thread."""

    settings: Settings
    broker: Broker | None = None
    port: int = 0
    uvicorn_options: dict[str, Any] = field(default_factory=dict)
    # Called with the app before it serves (e.g. to add a middleware).
    customize: Callable[[Any], None] | None = None
    # The app being served (uvicorn may wrap it, e.g. in its proxy-headers middleware).
    app: Any = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        # The listening socket is bound here and handed to uvicorn: a port picked by
        # free_port() and bound later can be taken in between (by another suite's client
        # socket on this shared machine). A restart binds the same port again (SO_REUSEADDR).
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        app = self.app = create_app(self.settings, self.broker)
        if self.customize is not None:
            self.customize(app)
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "log_level": "warning",
            # Leave logging alone: records propagate to the root logger, where caplog sees them.
            "log_config": None,
        }
        config = build_config(self.settings, app, **(options | self.uvicorn_options))
        self._server = PushlabServer(config, app)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        wait_until(lambda: self._server is not None and self._server.started, what="uvicorn")
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10 * MS)
            assert not self._thread.is_alive(), "uvicorn did not stop"
        self._server = self._thread = None

    def restart(self) -> None:
        """Stop and start again on the same port (same broker if one was injected)."""
        self.stop()
        self.start()


@dataclass
class ServerProcess:
    """``python -m servers`` in a subprocess (real signals, real exit), stderr kept in a file."""

    port: int
    env: dict[str, str]
    args: list[str] = field(default_factory=list)
    log_path: str = ""
    proc: Any = None
    # Runs the server under another command, e.g. ["prlimit", "--nofile=128"].
    prefix: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        import subprocess
        import sys
        import tempfile

        import httpx

        if not self.log_path:
            self.log_path = tempfile.mktemp(prefix="pushlab-server-", suffix=".log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHLAB_")}
        env |= {"PUSHLAB_TICKER_RATE": "0"} | self.env
        cmd = [sys.executable, "-m", "servers", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd = self.prefix + cmd
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd + self.args, env=env, stderr=log, stdout=log)

        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log()}")
            try:
                return httpx.get(self.url + "/healthz", timeout=1, trust_env=False).is_success
            except httpx.TransportError:
                return False

        wait_until(up, 20, "server process")
        return self

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def terminate(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(15 * MS)
            except Exception:
                self.proc.kill()
                self.proc.wait()
