"""Fault runs against a cluster: a paced stream, a fault in the middle, loss accounting after.

Faults: SIGKILL of one instance (``kill``), a graceful rolling restart of all instances
(``rolling``), and a restart of Redis that loses its data (``redis``, on a private Redis the
caller owns). Each run returns one cell per transport: lost, duplicates, silent gaps, announced
gaps, ``max_stall_ms_*`` (each client's longest silence), ``resume_ms_*`` (fault → first delivery
after it, every client) and ``reconnect_ms_*`` (fault → first event over a connection opened after
the fault, clients that opened one; polling through nginx's kept-alive connection rarely does).
For a rolling restart, which spans several instance restarts, ``max_stall_ms_*`` is the figure.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import Any

from experiments.fleet import Fleet, Member, account, publish_paced
from experiments.metrics import summarize
from feed.wire.contract import TRANSPORTS


async def fault_run(
    url: str,
    fault: Callable[[], Any],
    *,
    topic: str = "faults",
    verify: ssl.SSLContext | bool = True,
    transports: list[str] | None = None,
    per_transport: int = 3,
    events: int = 300,
    rate: float = 100.0,
    fault_at: int | None = None,
    settle_s: float = 30.0,
) -> dict[str, Any]:
    """Clients on ``url``; publish ``events`` at ``rate``; run ``fault`` (in a thread) mid-way.

    Returns ``{"cells": {transport: {...}}, "publisher": {...}, "caught_up": bool}``.
    """
    transports = transports or list(TRANSPORTS)
    fleet = await Fleet.start([url], topic, transports, per_transport, verify)
    fault_ns: list[int] = []

    def timed_fault() -> None:
        # The fault time is its start, unless the fault reports when it really struck (a kill
        # preceded by a lookup returns the kill's own time_ns()).
        started = time.time_ns()
        struck = fault()
        fault_ns.append(struck if isinstance(struck, int) and struck >= started else started)

    try:
        at = {fault_at if fault_at is not None else events // 3: timed_fault}
        log = await publish_paced(url, topic, events, rate, verify, at=at)
        caught_up = await fleet.until(
            lambda m: m.client.last_seq is not None and m.client.last_seq >= log.last_seq,
            settle_s,
            "caught up",
        )
    finally:
        await fleet.stop()
    seqs = log.seqs
    # After a Redis data loss the seqs jump (new epoch): only events after it must all arrive.
    resets = [i for i in range(1, len(seqs)) if seqs[i] != seqs[i - 1] + 1]
    first = seqs[resets[-1]] if resets else 1
    cells = account(fleet.members, range(first, log.last_seq + 1), fault_ns[0])
    for transport, cell in cells.items():
        group = [m for m in fleet.members if m.transport == transport]
        reconnect = [t for t in (_reconnect_ms(m, fault_ns[0]) for m in group) if t is not None]
        cell |= {k: round(v, 2) for k, v in summarize(reconnect, "reconnect_ms_").items()}
        if resets:
            # Events of the lost epoch a client never got must be covered by an announced gap.
            cell["unannounced_loss_clients"] = sum(
                1 for m in group if not _complete_or_announced(m.seqs, m.gaps, seqs[: resets[-1]])
            )
    publisher = {
        "published": log.published,
        "errors_retried": log.errors,
        "last_seq": log.last_seq,
        "seq_resets": len(resets),
    }
    return {"cells": cells, "publisher": publisher, "caught_up": caught_up}


def _reconnect_ms(member: Member, fault_ns: int) -> float | None:
    """Fault → first event delivered over a connection opened after the fault (None: no new one)."""
    before = [c for r, c in zip(member.recv_ns, member.conn_at_recv, strict=True) if r <= fault_ns]
    opened = before[-1] if before else 0
    for r, c in zip(member.recv_ns, member.conn_at_recv, strict=True):
        if r > fault_ns and c > opened:
            return (r - fault_ns) / 1e6
    return None


def _complete_or_announced(got: list[int], gaps: list[Any], before: list[int]) -> bool:
    """Either every pre-reset event arrived, or the client was told (a gap) it missed some."""
    received_before = got[: len(before)]
    return received_before == before or bool(gaps)


async def with_fault(url: str, fault: Callable[[], Any], **options: Any) -> dict[str, Any]:
    """:func:`fault_run` with a bounded overall time (the loops inside are bounded too)."""
    events = int(options.get("events", 300))
    rate = float(options.get("rate", 100.0))
    async with asyncio.timeout(events / rate + 120):
        return await fault_run(url, fault, **options)
