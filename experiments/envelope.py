"""Back of the envelope: N concurrent connections priced with the reference run's measurements.

Per-connection and per-event figures come from the reference run's cells: memory per idle
connection (``kind: idle``), server CPU and wire bytes per delivered event (the ``headline`` cell
of the Python server). The rest are stated assumptions (:class:`Assumptions`: how many users, how
often each gets an event) or this repo's defaults (the WebSocket ping interval) and Linux's default
ephemeral port range. ``docfigures`` renders the rows (``<!-- fig table=envelope transport=ws
-->``) and notebook 06 shows the same ones, so the guide's arithmetic never drifts from the run.

Deliberate simplifications, stated where they are used: a heartbeat ping is priced like one
delivered event (both are one small frame out; the pong adds a small frame in), and CPU scales
linearly from the measured 100-subscriber cell (it does not: past one core a process saturates,
which is why the answer is a number of cores, i.e. processes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from experiments.records import BenchCell
from feed.settings import DEFAULT_WS_PING_INTERVAL_S

LINUX_EPHEMERAL_PORTS = 60999 - 32768 + 1  # net.ipv4.ip_local_port_range default: 32768-60999


@dataclass(frozen=True)
class Assumptions:
    """What the design question gives, not what the lab measured."""

    connections: int = 1_000_000
    events_per_user_per_min: float = 1.0
    ping_interval_s: float = DEFAULT_WS_PING_INTERVAL_S
    ephemeral_ports: int = LINUX_EPHEMERAL_PORTS


@dataclass(frozen=True)
class Measured:
    """The reference run's figures for one transport (Python server)."""

    transport: str
    memory_per_connection_kib: float
    cpu_s_per_event: float
    wire_bytes_per_event: float
    latency_ms_p99: float


def measured(cells: Sequence[BenchCell], transport: str) -> Measured | None:
    """The idle and headline cells of ``transport``; ``None`` when the run lacks either."""
    idle = next(
        (c for c in cells
         if c.get("kind") == "idle" and c.get("transport") == transport
         and not c.get("server_env") and "memory_per_connection_kb" in c),
        None,
    )  # fmt: skip
    busy = next(
        (c for c in cells
         if "headline" in c.get("tags", []) and c.get("server") == "python"
         and c.get("transport") == transport and "server_cpu_s_per_1k_events" in c),
        None,
    )  # fmt: skip
    if idle is None or busy is None:
        return None
    return Measured(
        transport=transport,
        memory_per_connection_kib=float(idle["memory_per_connection_kb"]),
        cpu_s_per_event=float(busy["server_cpu_s_per_1k_events"]) / 1000,
        wire_bytes_per_event=float(busy["wire_bytes_per_event"]),
        latency_ms_p99=float(busy["latency_ms_p99"]),
    )


def rows(m: Measured, a: Assumptions = Assumptions()) -> list[tuple[str, str, str]]:
    """``(quantity, arithmetic, result)`` for ``a.connections`` concurrent users."""
    n = a.connections
    deliveries = n * a.events_per_user_per_min / 60
    pings = n / a.ping_interval_s if a.ping_interval_s else 0.0
    memory_gib = m.memory_per_connection_kib * n / 2**20
    return [
        ("idle memory", f"{m.memory_per_connection_kib:.1f} KiB × {n:,}", f"{memory_gib:,.1f} GiB"),
        (
            "deliveries",
            f"{n:,} users × {a.events_per_user_per_min:g}/min ÷ 60",
            f"{deliveries:,.0f} events/s",
        ),
        (
            "CPU for deliveries",
            f"{deliveries:,.0f}/s × {m.cpu_s_per_event * 1e6:.0f} µs",
            f"{deliveries * m.cpu_s_per_event:,.1f} cores",
        ),
        (
            "heartbeat pings",
            f"{n:,} ÷ {a.ping_interval_s:g} s",
            f"{pings:,.0f} pings/s (and as many pongs in)",
        ),
        (
            "CPU for heartbeats (a ping priced as one event)",
            f"{pings:,.0f}/s × {m.cpu_s_per_event * 1e6:.0f} µs",
            f"{pings * m.cpu_s_per_event:,.1f} cores",
        ),
        (
            "one broadcast to everyone",
            f"{n:,} × {m.cpu_s_per_event * 1e6:.0f} µs",
            f"{n * m.cpu_s_per_event:,.0f} core-seconds",
        ),
        (
            "downstream bandwidth",
            f"{deliveries:,.0f}/s × {m.wire_bytes_per_event:.0f} B × 8",
            f"{deliveries * m.wire_bytes_per_event * 8 / 1e6:,.1f} Mbit/s",
        ),
        ("file descriptors", f"{n:,} at the gateways; a proxy holds two per client", f"{2 * n:,}"),
        (
            "ephemeral ports, proxy → gateways",
            f"{n:,} ÷ {a.ephemeral_ports:,} ports per (source IP, gateway IP:port)",
            f"≥ {-(-n // a.ephemeral_ports):,} gateway addresses (or proxy source IPs)",
        ),
    ]


def render_markdown(cells: Sequence[BenchCell], transport: str, source: str) -> str:
    """The rows as a Markdown table, or a "not yet measured" line."""
    m = measured(cells, transport)
    if m is None:
        return f"*Not yet measured:* idle and headline cells for `{transport}`; run `make bench`.\n"
    lines = [
        f"| {transport}: quantity | arithmetic (measured × assumed) | result |",
        "|---|---|---|",
        *[f"| {q} | {how} | {value} |" for q, how, value in rows(m)],
        "",
        source,
    ]
    return "\n".join(lines) + "\n"
