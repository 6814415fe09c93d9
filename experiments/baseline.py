"""The Node.js baseline row: the seed's own stack (Express + ``ws``) speaking pushlab's contract.

``baseline/node/server.js`` serves ``/ws``, ``/sse``, ``/publish`` and ``/healthz`` with a ticker
of the same payload shape as ``feed/ticker.py``; its dependencies are pinned in the committed
``package-lock.json`` and installed with ``npm ci`` into ``baseline/node/node_modules``
(git-ignored). Without node the row is skipped with a message, never an error:

    ok, why = node_available()
    if ok:
        with NodeServer(rate=1000, size=64) as node:
            ...  # node.url, node.pid

:class:`NodeServer` is the one way the lab starts it (bench, abuse runs, tests). Node binds its
own port, so it gets one from ``servers.launch.free_port``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from experiments.children import spawn, stop, wait_healthy
from experiments.tls import TLSFiles
from servers.launch import free_port

NODE_DIR = Path(__file__).resolve().parent.parent / "baseline" / "node"
MIN_NODE_MAJOR = 18
NPM_TIMEOUT_S = 300.0


def _node() -> str | None:
    return shutil.which("node")


def node_available() -> tuple[bool, str]:
    """``(True, "node v20.x")`` when node and npm can run the baseline, else ``(False, why)``."""
    node = _node()
    if node is None:
        return False, "node is not installed (the Node baseline row is skipped)"
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"node does not run: {exc}"
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        return False, f"unrecognised node version {version!r}"
    if major < MIN_NODE_MAJOR:
        return False, f"node {version} is older than v{MIN_NODE_MAJOR}"
    if shutil.which("npm") is None and not (NODE_DIR / "node_modules" / "ws").exists():
        return False, "npm is not installed and baseline/node/node_modules is missing"
    return True, f"node {version}"


def ensure_node_modules() -> None:
    """``npm ci`` in ``baseline/node`` when its dependencies are missing (lockfile versions)."""
    if all((NODE_DIR / "node_modules" / dep).is_dir() for dep in ("ws", "express")):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: cannot install baseline/node dependencies")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise RuntimeError(f"npm ci failed in {NODE_DIR}:\n{done.stderr[-2000:]}")


def node_server_command(port: int, rate: float, size: int, topic: str, history: int) -> list[str]:
    """The argv of the baseline server on 127.0.0.1:``port`` with its ticker."""
    node = _node() or "node"
    return [
        node,
        str(NODE_DIR / "server.js"),
        "--port",
        str(port),
        "--rate",
        f"{rate:g}",
        "--size",
        str(size),
        "--topic",
        topic,
        "--history",
        str(history),
    ]


@dataclass
class NodeServer:
    """``baseline/node/server.js`` on 127.0.0.1 with its ticker, healthy; stopped by its group."""

    rate: float = 0.0
    size: int = 64
    topic: str = "ticks"
    history: int = 10_000
    flags: Sequence[str] = ()
    log_path: Path | None = None
    port: int = 0
    start_timeout_s: float = 30.0
    # HTTPS with these files (ALPN http/1.1), or node:http2's secure server with ``http2``.
    tls: TLSFiles | None = None
    http2: bool = False
    proc: subprocess.Popen[str] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the Node server is not running")
        return self.proc.pid

    @property
    def argv(self) -> list[str]:
        cmd = node_server_command(self.port, self.rate, self.size, self.topic, self.history)
        if self.tls is not None:
            cmd += ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
            cmd += ["--http2", "1"] if self.http2 else []
        elif self.http2:
            raise ValueError("the Node baseline serves HTTP/2 over TLS only (give tls)")
        return cmd + list(self.flags)

    def start(self) -> NodeServer:
        ensure_node_modules()
        self.port = self.port or free_port()
        started: list[subprocess.Popen[str]] = []
        try:
            self.proc = spawn(self.argv, into=started, log=self.log_path)
            verify = self.tls.client_context() if self.tls else True
            wait_healthy(self.url, self.proc, self.start_timeout_s, verify=verify)
        except BaseException:
            for p in started:
                stop(p)
            self.proc = None
            raise
        return self

    def stop(self) -> int | None:
        """SIGTERM its process group, SIGKILL after 5 s; returns the exit code."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        stop(proc)
        return proc.returncode

    def __enter__(self) -> NodeServer:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
