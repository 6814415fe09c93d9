"""Test helpers: condition waits, system-part checks (servers start through servers/launch.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from feed.settings import SSE_IMPLS, Settings
from servers.launch import free_port as free_port  # tests import it from here

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
