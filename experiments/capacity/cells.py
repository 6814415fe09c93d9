"""The capacity search as data: rows (server x transport), step ladders and the service level.

A step offers ``subscribers x rate`` events/s of 64-byte publisher-stamped events, open loop:
the ticker publishes at ``rate`` whether or not anyone keeps up, and every subscriber is
connected before it starts (``preconnect``). The subscribers are counting wires
(:mod:`experiments.countwire`, :mod:`experiments.capacity.pollwire`) spread over several
generator processes, each on its own loopback source address, so the knee is the server's,
not the load client's. A step is one :class:`experiments.matrix.Cell`, run by the bench's
own cell runner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypedDict

from experiments.matrix import NODE_TRANSPORTS, Cell, variant, who
from feed.wire.contract import TRANSPORTS

EVENT_SIZE = 64
P99_LIMIT_MS = 100.0
DELIVERED_MIN_PCT = 99.9
# Open loop: a step must also carry what it offers. The window counts events received in it,
# so one event per subscriber may fall either side of each edge (2.5% of a 2 s window at
# 20 events/s): below 95% the server, or the ticker in its process, fell behind the offered rate.
CARRIED_MIN_PCT = 95.0
# One event loop is one core: at 90% the server has no headroom left (experiments/cells.py).
SERVER_FULL_PCT = 90.0
GENERATOR_FULL_PCT = 90.0
# All cores this busy while the server had less than a core of its own: something else (the
# generators, or other work on the machine) took the CPU the server needed.
MACHINE_FULL_PCT = 95.0
# The hashrocket websocket-shootout rule: clients at which broadcast p95 crosses 500 ms.
SHOOTOUT_P95_MS = 500.0
SHOOTOUT_RATE = 20.0
# A counting process here ingests some 40k events/s on a core with a 5 ms hold (countwire's
# Batcher); a poller pays per answer, so polling steps count requests/s against the same budget.
GEN_BUDGET_PER_S = 25_000
GEN_MIN, GEN_MAX = 2, 6
# A generator process holds at most ~19k sockets (fd limit 20,000, FIELD-NOTES).
GEN_MAX_SOCKETS = 15_000
HOLD_MS = 5
# Short polling asks every 50 ms: at the lab's default 250 ms its p99 is above any sensible limit
# before the server does any work, so the limit would say nothing about the server.
POLL_INTERVAL_S = 0.05
# Long polls re-ask at once; a 20 s hold is never reached at these rates.
LONG_POLL_WAIT_S = 20.0


@dataclass(frozen=True)
class Level:
    """The service level a step must hold to count (p99, delivered share, server CPU)."""

    p99_ms: float = P99_LIMIT_MS
    delivered_pct: float = DELIVERED_MIN_PCT
    server_pct: float = SERVER_FULL_PCT
    p95_ms: float | None = None  # the shootout's rule replaces p99 with p95
    carried_pct: float = CARRIED_MIN_PCT

    def as_dict(self) -> dict[str, Any]:
        return {"p99_ms": self.p99_ms, "delivered_pct": self.delivered_pct,
                "server_pct": self.server_pct, "p95_ms": self.p95_ms,
                "carried_pct": self.carried_pct}  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One line of the headline figure: a server and transport (and implementation settings)."""

    server: str
    transport: str
    server_env: dict[str, str] = field(default_factory=dict)
    search: str = "knee"  # knee | shootout

    @property
    def label(self) -> str:
        return " ".join([who(self.server), self.transport, *variant(self.server_env)])


@dataclass(frozen=True)
class Step:
    subscribers: int
    rate: float

    @property
    def offered_per_s(self) -> float:
        return self.subscribers * self.rate


@dataclass(frozen=True)
class Plan:
    """A whole capacity run: rows with their ladders, timing and the calibration sizes."""

    name: str
    rows: tuple[Row, ...]
    ladder: tuple[Step, ...]
    shootout: tuple[Step, ...]
    warmup_s: float
    duration_s: float
    calibration: tuple[int, ...]  # sockets
    calibration_s: float

    def steps(self, row: Row) -> tuple[Step, ...]:
        return self.shootout if row.search == "shootout" else self.ladder


# Offered deliveries/s from 1k to 2.56M, roughly doubling; subscribers grow too, since the
# cost of a transport is per connection as well as per event.
LADDER = (
    Step(50, 20), Step(100, 25), Step(200, 25), Step(250, 40), Step(500, 40), Step(500, 80),
    Step(1000, 80), Step(1000, 160), Step(2000, 160), Step(4000, 160), Step(4000, 320),
    Step(8000, 320),
)  # fmt: skip
SHOOTOUT = tuple(Step(n, SHOOTOUT_RATE) for n in (500, 1000, 2000, 4000, 8000, 16000))
SSE_PUSHLAB = {"PUSHLAB_SSE_IMPL": "pushlab"}


def _knee_rows() -> tuple[Row, ...]:
    """Every transport of the contract on pushlab (SSE in both implementations), then the ones
    Node serves too: a transport added to the contract gets its capacity row without an edit."""
    mine = [Row("python", t) for t in TRANSPORTS]
    mine.insert(TRANSPORTS.index("sse") + 1, Row("python", "sse", SSE_PUSHLAB))
    return (*mine, *(Row("node", t) for t in TRANSPORTS if t in NODE_TRANSPORTS))


ROWS = (*_knee_rows(), Row("python", "ws", search="shootout"), Row("node", "ws", search="shootout"))
PROFILES = ("capacity", "capacity-tiny")


def plan(name: str) -> Plan:
    """The named capacity plan (``capacity``: ~10 min on 2 cores; ``capacity-tiny``: tests)."""
    if name == "capacity":
        return Plan(name, ROWS, LADDER, SHOOTOUT, 1.0, 3.0, (100, 1000), 2.0)
    if name == "capacity-tiny":
        rows = (
            Row("python", "poll"), Row("python", "long-poll"), Row("python", "ws"),
            Row("python", "stream"), Row("node", "long-poll"), Row("node", "ws"),
            Row("python", "ws", search="shootout"),
        )  # fmt: skip
        tiny = (Step(4, 20), Step(8, 40))
        return Plan(name, rows, tiny, (Step(8, 20),), 0.3, 1.0, (8,), 0.5)
    raise ValueError(f"unknown capacity profile {name!r} ({', '.join(PROFILES)})")


def generators(transport: str, step: Step) -> int:
    """Generator processes for a step: each within its event (or request) budget and fd limit."""
    load = step.offered_per_s
    if transport == "poll":
        load = max(load, step.subscribers / POLL_INTERVAL_S)
    by_load = math.ceil(load / GEN_BUDGET_PER_S)
    by_fds = math.ceil(step.subscribers / GEN_MAX_SOCKETS)
    return max(GEN_MIN, min(GEN_MAX, max(by_load, by_fds)), by_fds)


def client(transport: str) -> dict[str, Any]:
    """Counting-wire options for a transport (per-process source address, bounded connects)."""
    opts: dict[str, Any] = {"wire": "count", "source": "auto"}
    if transport == "poll":
        opts["interval_s"] = POLL_INTERVAL_S
    elif transport == "long-poll":
        opts["wait_s"] = LONG_POLL_WAIT_S
    else:  # every pushed transport (ws, sse, stream) is read and counted per read, with a hold
        opts["hold_ms"] = HOLD_MS
    return opts


def step_cell(p: Plan, row: Row, step: Step) -> Cell:
    """The bench cell that measures one step of one row."""
    return Cell(
        row.transport, step.subscribers, step.rate, EVENT_SIZE, server=row.server,
        server_env=row.server_env, client=client(row.transport), warmup_s=p.warmup_s,
        duration_s=p.duration_s, generators=generators(row.transport, step),
        tags=("capacity", row.search), preconnect=True,
    )  # fmt: skip


class StepRecord(TypedDict, total=False):
    """One measured step as saved in ``summary.json`` (the bench cell's figures plus these)."""

    row: str
    search: str
    step: int
    offered_per_s: float
    delivered_pct: float
    carried_pct: float
    latency_ms_p95: float
    wire_bytes_per_s: float
    within: bool
    broke: list[str]


class KneeRecord(TypedDict):
    """A row's knee as saved in ``capacity.json``."""

    row: str
    server: str
    transport: str
    search: str
    step: int | None
    subscribers: int
    rate: float
    events_per_s: float
    connections: int
    server_cpu_pct: float
    wire_bytes_per_s: float
    generator_cpu_pct: float
    server_cpu_us_per_event: float
    generator_cpu_us_per_event: float
    latency_ms_p99: float
    schedule_latency_ms_p99: float  # from each event's due time (experiments/schedule.py)
    ticker_lag_ms_p99: float
    lower_bound: bool
    why: str


class CalibrationRecord(TypedDict):
    """The machine's ceiling: one ``send`` per socket per event, no framework."""

    sockets: int
    frame_bytes: int
    writes: int
    wall_s: float
    writer_cpu_s: float
    reader_cpu_s: float
    writes_per_s: float
    writes_per_core_s: float
    cpu_us_per_write: float
