"""Where and with what a run happened: OS, CPU, Python, library versions, git commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

LIBRARIES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "sse-starlette",
    "httpx",
    "httpx-sse",
    "websockets",
    "wsproto",
    "orjson",
    "locust",
    "redis",
)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape the figures."""
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine_info() -> dict[str, Any]:
    """Everything a reader needs to judge whether two runs are comparable."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "os": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "git_commit": _git("rev-parse", "HEAD"),
        # A run's own output folder under results/ must not mark the tree dirty.
        "git_dirty": bool(_git("status", "--porcelain", "--", ".", ":!results")),
        "versions": versions(),
    }
