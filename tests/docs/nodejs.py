"""Run a snippet of the seed's Node.js code on baseline/node's own `ws` and Express."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from experiments.baseline import NODE_DIR, ensure_node_modules, node_available
from tests.support import IN_CI, require


@dataclass
class NodeScript:
    """A script that printed its port first; every later stdout line is kept in ``lines``."""

    port: int
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def records(self) -> list[Any]:
        """The JSON lines printed so far."""
        return [json.loads(line) for line in list(self.lines) if line.startswith("{")]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def node_script(source: str) -> Iterator[NodeScript]:
    """``node -e source`` in baseline/node (so ``require('ws')`` is the seed's stack)."""
    node = require("node", "the seed's Node.js stack")
    ok, why = node_available()
    if not ok:
        (pytest.fail if IN_CI else pytest.skip)(why)
    ensure_node_modules()
    proc = subprocess.Popen(
        [node, "-e", source],
        cwd=NODE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # a crash's stack trace is evidence, not noise in the test log
        text=True,
    )
    assert proc.stdout is not None
    stdout = proc.stdout
    reader: threading.Thread | None = None
    try:
        script = NodeScript(int(stdout.readline()), proc)
        # A reader thread: the pipe is drained while the test runs, and lines arrive in order.
        reader = threading.Thread(target=lambda: script.lines.extend(stdout), daemon=True)
        reader.start()
        yield script
    finally:
        proc.terminate()
        proc.wait(10)
        if reader is not None:
            reader.join(10)  # EOF once the process is gone; closing under it would raise there
        stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
