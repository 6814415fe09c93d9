"""The Node.js baseline row: the seed's own stack (Express + ``ws``) speaking pushlab's contract.

``baseline/node/server.js`` serves ``/ws``, ``/sse``, ``/publish`` and ``/healthz`` with a ticker
of the same payload shape as ``feed/ticker.py``; its dependencies are pinned in the committed
``package-lock.json`` and installed with ``npm ci`` into ``baseline/node/node_modules``
(git-ignored). Without node the row is skipped with a message, never an error:

    ok, why = node_available()
    if ok:
        ensure_node_modules()
        argv = node_server_command(port, rate=1000, size=64, topic="ticks", history=10_000)
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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
