"""The ladder's data: which rungs each profile climbs (one fresh server process per rung).

A rung is one server (``python`` with an SSE implementation, ``node``, ``workers``: ``pushlab
serve --workers N`` over Redis, or ``floor``: uvicorn with pushlab's config around a bare app that
only holds the connection, :mod:`experiments.capacity.request_floor`), one transport and one
connection count. ``full`` is issue 18's
ladder: 1k, 5k, 10k and ~19k idle connections of every held transport (one process holds at most
~19k sockets here: the open-files limit is 20,000 per process and cannot be raised), Node rows
for WebSocket and SSE, floor rows for both where the targets are read (15k and ~19k), and 36,000
over three workers. ``short`` is the mechanics at a few
hundred connections (tests).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from feed.wire.contract import TRANSPORTS

SSE_IMPLS = ("sse-starlette", "pushlab")
FULL_COUNTS = (1_000, 5_000, 10_000, 19_000)
# The memory targets are stated at 15k (experiments/ladder/targets.py): WS and pushlab-SSE rungs.
TARGET_COUNT = 15_000
WORKERS_COUNT, WORKERS_N = 36_000, 3


@dataclass(frozen=True)
class Rung:
    """One cell of the ladder."""

    server: str  # python | node | workers | floor
    transport: str  # one of HELD_TRANSPORTS
    n: int
    sse_impl: str = ""  # python SSE only
    workers: int = 1

    @property
    def name(self) -> str:
        impl = f"-{self.sse_impl}" if self.sse_impl else ""
        many = f"-x{self.workers}" if self.workers > 1 else ""
        return f"{self.server}{many}-{self.transport}{impl}-{self.n}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"name": self.name}


# Held idle: every transport of the contract but short polling, which holds no connection
# between its requests (nothing to hold idle; its cost is per request, the capacity search's).
HELD_TRANSPORTS = tuple(t for t in TRANSPORTS if t != "poll")


def python_rungs(n: int) -> list[Rung]:
    """Every held Python transport at ``n`` connections (SSE in both implementations)."""
    rungs = []
    for t in HELD_TRANSPORTS:
        impls = SSE_IMPLS if t == "sse" else ("",)
        rungs += [Rung("python", t, n, sse_impl=impl) for impl in impls]
    return rungs


def profile(name: str, node: bool = True) -> list[Rung]:
    """The rungs of ``name`` (``full`` or ``short``); ``node=False`` leaves the Node rows out."""
    if name == "short":
        counts: tuple[int, ...] = (300,)
        many = [Rung("workers", "ws", 300, workers=2), *floor_rungs(300)]
    elif name == "full":
        counts = FULL_COUNTS
        many = [
            Rung("workers", "ws", WORKERS_COUNT, workers=WORKERS_N),
            Rung("workers", "sse", WORKERS_COUNT, sse_impl="pushlab", workers=WORKERS_N),
        ]
    else:
        raise ValueError(f"unknown ladder profile {name!r} (have: short, full)")
    rungs = []
    for n in counts:
        rungs += python_rungs(n)
        if node:
            rungs += [Rung("node", "ws", n), Rung("node", "sse", n)]
    if name == "full":
        at = TARGET_COUNT
        rungs += [Rung("python", "ws", at), Rung("python", "sse", at, sse_impl="pushlab")]
        if node:
            rungs += [Rung("node", "ws", TARGET_COUNT), Rung("node", "sse", TARGET_COUNT)]
        rungs += [*floor_rungs(TARGET_COUNT), *floor_rungs(FULL_COUNTS[-1])]
    return rungs + many


def floor_rungs(n: int) -> list[Rung]:
    """The stack's floor for the targets' transports: the same uvicorn, nothing behind it."""
    return [Rung("floor", "ws", n), Rung("floor", "sse", n)]


PROFILES = ("short", "full")
