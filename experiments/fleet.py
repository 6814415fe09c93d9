"""A fleet of pushlab's asyncio clients on one topic, a paced publisher, and the loss accounting.

Used by the fault runs (experiments/failover.py) and the cluster bench cells: every client keeps
``(seq, recv_ns)`` of each delivery and its gap signals, so a run can say per transport how many
events were lost, delivered twice, or skipped silently, and how long delivery stalled after a fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import httpx

from clients import CLIENTS, FeedClient, Received, RetryPolicy
from experiments.metrics import summarize
from feed.events import Gap

FLEET_RETRY = RetryPolicy(base_s=0.05, cap_s=1.0)


@dataclass
class Member:
    """One client and everything it delivered."""

    transport: str
    client: FeedClient
    seqs: list[int] = field(default_factory=list)
    recv_ns: list[int] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    conn_at_recv: list[int] = field(default_factory=list)  # connections opened so far, per event
    gaps: list[Gap] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        async with contextlib.aclosing(self.client.events()) as items:
            async for item in items:
                if isinstance(item, Received):
                    self.seqs.append(item.event.seq)
                    self.recv_ns.append(item.recv_ns)
                    self.latency_ms.append(item.latency_ms)
                    self.conn_at_recv.append(self.client.counters.connections)
                else:
                    self.gaps.append(item)


def make_client(transport: str, url: str, topic: str, verify: ssl.SSLContext | bool) -> FeedClient:
    """A client tuned for fault runs: short backoff, fast polls, short long-poll holds."""
    extra: dict[str, Any] = {"retry": FLEET_RETRY, "verify": verify}
    if transport == "poll":
        extra["interval_s"] = 0.05
    elif transport == "long-poll":
        extra["wait_s"] = 5.0
    return CLIENTS[transport](url, topic, **extra)


class Fleet:
    """Start clients (round-robin over ``urls``), wait until each is connected, stop them."""

    def __init__(self, members: list[Member]) -> None:
        self.members = members

    @classmethod
    async def start(
        cls,
        urls: list[str],
        topic: str,
        transports: list[str],
        per_transport: int,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 20.0,
    ) -> Fleet:
        members: list[Member] = []
        for t in transports:
            for i in range(per_transport):
                url = urls[(len(members) + i) % len(urls)]
                members.append(Member(t, make_client(t, url, topic, verify)))
        for m in members:
            m.task = asyncio.create_task(m.run())
        fleet = cls(members)
        await fleet.until(lambda m: m.client.last_seq is not None, timeout, "connected")
        return fleet

    async def until(self, cond: Callable[[Member], bool], timeout: float, what: str) -> bool:
        """Wait until ``cond`` holds for every member; False on timeout (never raises)."""
        deadline = time.monotonic() + timeout
        while not all(cond(m) for m in self.members):
            for m in self.members:
                if m.task is not None and m.task.done():
                    m.task.result()  # a client that died raises here: a fatal error is a finding
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def stop(self) -> None:
        for m in self.members:
            if m.task is not None:
                m.task.cancel()
        for m in self.members:
            if m.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await m.task


@dataclass
class PublishLog:
    """What the publisher did: last acknowledged seq and errors it retried through."""

    last_seq: int = 0
    published: int = 0
    errors: int = 0
    seqs: list[int] = field(default_factory=list)


async def publish_paced(
    url: str,
    topic: str,
    count: int,
    rate: float,
    verify: ssl.SSLContext | bool = True,
    at: dict[int, Callable[[], Any]] | None = None,
    log: PublishLog | None = None,
    max_errors: int = 500,
) -> PublishLog:
    """Publish ``count`` events at ``rate``/s; ``at[i]`` runs (in a thread) after event ``i``.

    Failed publishes (5xx, connection errors during a fault) are retried after 20 ms, at most
    ``max_errors`` in total, so the loop is bounded in count and time.
    """
    log = log or PublishLog()
    faults: list[asyncio.Future[Any]] = []
    interval = 1.0 / rate
    start = time.perf_counter()
    async with httpx.AsyncClient(verify=verify, trust_env=False, timeout=5.0) as http:
        for i in range(count):
            await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
            while True:
                try:
                    r = await http.post(f"{url}/publish", params={"topic": topic}, json={"i": i})
                    if r.status_code == 200:
                        log.last_seq = int(r.json()["seq"])
                        log.published += 1
                        log.seqs.append(log.last_seq)
                        break
                except httpx.HTTPError:
                    pass
                log.errors += 1
                if log.errors > max_errors:
                    raise RuntimeError(f"publisher gave up after {max_errors} errors")
                await asyncio.sleep(0.02)
            if at and i in at:
                faults.append(asyncio.ensure_future(asyncio.to_thread(at[i])))
    for f in faults:
        await f
    return log


def account(members: list[Member], expected: range, fault_ns: int | None = None) -> dict[str, Any]:
    """Per-transport totals: lost, duplicates, silent gaps, announced gaps, stall after a fault."""
    out: dict[str, Any] = {}
    for transport in sorted({m.transport for m in members}):
        group = [m for m in members if m.transport == transport]
        want = set(expected)
        lost = sum(len(want - set(m.seqs)) for m in group)
        dup_delivered = sum(len(m.seqs) - len(set(m.seqs)) for m in group)
        cell: dict[str, Any] = {
            "clients": len(group),
            "lost": lost,
            "duplicates_delivered": dup_delivered,
            "duplicates_dropped": sum(m.client.counters.duplicates for m in group),
            "silent_gaps": sum(m.client.counters.silent_gaps for m in group),
            "gaps_announced": sum(len(m.gaps) for m in group),
            "reconnects": sum(m.client.counters.reconnects for m in group),
            "reconnected_clients": sum(1 for m in group if m.client.counters.reconnects > 0),
        }
        if fault_ns is not None:
            # Stall: from the fault to each client's first delivery after it.
            stalls = [
                (next((r for r in m.recv_ns if r > fault_ns), fault_ns) - fault_ns) / 1e6
                for m in group
            ]
            cell |= {k: round(v, 2) for k, v in summarize(stalls, "resume_ms_").items()}
        # Longest silence per client while events kept flowing: what a fault cost it, whatever
        # the fault (one reconnect, several, or none at all because nginx retried for it).
        stalls = [max((b - a for a, b in pairwise(m.recv_ns)), default=0) / 1e6 for m in group]
        cell |= {k: round(v, 2) for k, v in summarize(stalls, "max_stall_ms_").items()}
        latencies = [x for m in group for x in m.latency_ms]
        cell |= {k: round(v, 3) for k, v in summarize(latencies, "latency_ms_").items()}
        out[transport] = cell
    return out
