"""Issue 18's connection targets, from a saved ladder run: rows for the perf ratios table.

- handshakes/s while connecting, pushlab against Node on the same transport and count (WS; SSE
  with pushlab's own response): >= 0.8x Node, moonshot 1.0x;
- RSS per idle WebSocket and per idle pushlab-SSE stream at 15k connections: <= 8 KiB, moonshot
  <= Node's.

Each note adds the stack's floor where the run has it (``floor`` rungs: the same uvicorn with
pushlab's config around an app that only holds the connection): what no pushlab code on that
stack can go below.

A row counts when both cells held every connection to the end and no holder process averaged
>= 90% of a core while connecting (then the client, not the server, set the handshake rate).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from experiments.records import RatioRow

HANDSHAKE_TARGET, HANDSHAKE_MOONSHOT = 0.8, 1.0
MEMORY_TARGET_KIB, MEMORY_AT = 8.0, 15_000
GENERATOR_BOUND_PCT = 90.0
PER_CPU = "handshakes_per_server_cpu_s"
# (transport, Python SSE implementation) pairs the targets name.
TARGETS = (("ws", ""), ("sse", "pushlab"))

Cell = Mapping[str, Any]
Cells = Sequence[Cell]


def _ladder(cells: Cells) -> list[Cell]:
    return [c for c in cells if "ladder" in c.get("tags", [])]


def _find(cells: Cells, server: str, transport: str, n: int, impl: str = "") -> Cell | None:
    return next(
        (c for c in cells if c["server"] == server and c["transport"] == transport
         and c["n"] == n and c.get("sse_impl", "") == impl), None,
    )  # fmt: skip


def _why_not(*cells: Cell | None) -> str:
    bad = []
    for c in cells:
        if c is None:
            bad.append("no such rung in this run")
        elif c.get("status") != "ok":
            bad.append(f"{c['name']}: {c.get('error') or str(c.get('open')) + ' open'}")
        elif c.get("connect_generator_cpu_pct", 0) >= GENERATOR_BOUND_PCT:
            bad.append(f"{c['name']}: holders at {c['connect_generator_cpu_pct']:.0f}% CPU")
    return "; ".join(bad)


def _row(figure: str, py: Cell | None, node: Cell | None, key: str,
         target: str, met: bool, note: str) -> RatioRow:  # fmt: skip
    value = float(py[key]) if py else math.nan
    base = float(node[key]) if node else math.nan
    why = _why_not(py, node)
    return {
        "figure": figure, "server": "python" + (f" sse_impl={py['sse_impl']}" if py and py.get(
            "sse_impl") else ""), "transport": py["transport"] if py else "",
        "rate": 0.0, "python": value, "node_ws": base,
        "ratio": value / base if base and math.isfinite(base) else math.nan,
        "target": target, "met": met, "counts": not why, "why_not": why, "note": note,
    }  # fmt: skip


def _per_cpu(c: Cell | None) -> Cell | None:
    """``c`` with handshakes per second of the server's CPU while connecting.

    The wall-clock rate is what the clients' connect budget allowed: in the reference run Node
    accepted 19,000 WebSockets in the same 11.06 s as pushlab while using a third of its CPU.
    Handshakes per CPU-second is what a server would accept with a core to itself.
    """
    if c is None:
        return None
    cpu = float(c.get("connect_server_cpu_s") or 0.0)
    return {**c, PER_CPU: int(c["connected"]) / cpu if cpu > 0 else math.nan}


def rows(cells: Cells) -> list[RatioRow]:
    """Handshake rows at the largest count both servers climbed; memory rows at 15k."""
    ladder = _ladder(cells)
    if not ladder:
        return []
    out = []
    for transport, impl in TARGETS:
        both = [
            c["n"] for c in ladder
            if c["server"] == "python" and c["transport"] == transport
            and c.get("sse_impl", "") == impl and _find(ladder, "node", transport, c["n"])
        ]  # fmt: skip
        n = max(both, default=0)
        py, node = _find(ladder, "python", transport, n, impl), _find(ladder, "node", transport, n)
        py, node = _per_cpu(py), _per_cpu(node)
        ratio = (py[PER_CPU] / node[PER_CPU]) if py and node else math.nan
        moon = "met" if ratio >= HANDSHAKE_MOONSHOT else "not met"
        wall = (
            f"; wall clock {py['handshakes_per_s']:,.0f} vs {node['handshakes_per_s']:,.0f}/s"
            if py and node else ""
        )  # fmt: skip
        floor = _per_cpu(_find(ladder, "floor", transport, n))
        at_floor = (
            f"; stack floor {floor[PER_CPU]:,.0f}/CPU-s = {floor[PER_CPU] / node[PER_CPU]:.2f}x"
            if floor and node and floor.get("status") == "ok" else ""
        )  # fmt: skip
        out.append(_row(
            f"handshakes per server CPU-s ({n} conns; vs node {transport})", py, node, PER_CPU,
            f">= {HANDSHAKE_TARGET:g}x", bool(ratio >= HANDSHAKE_TARGET),
            f"moonshot >= {HANDSHAKE_MOONSHOT:g}x: {moon}{wall}{at_floor}",
        ))  # fmt: skip
    for transport, impl in TARGETS:
        py = _find(ladder, "python", transport, MEMORY_AT, impl)
        node = _find(ladder, "node", transport, MEMORY_AT)
        kib = float(py["rss_kib_per_conn"]) if py else math.nan
        base = float(node["rss_kib_per_conn"]) if node else math.nan
        moon = "met" if kib <= base else "not met"
        floor = _find(ladder, "floor", transport, MEMORY_AT)
        at_floor = (
            f"; stack floor {float(floor['rss_kib_per_conn']):.1f} KiB"
            if floor and floor.get("status") == "ok" else ""
        )  # fmt: skip
        out.append(_row(
            f"KiB RSS / idle conn at {MEMORY_AT} (vs node {transport})", py, node,
            "rss_kib_per_conn", f"<= {MEMORY_TARGET_KIB:g} KiB", bool(kib <= MEMORY_TARGET_KIB),
            f"moonshot <= node's: {moon}{at_floor}",
        ))  # fmt: skip
    return out
