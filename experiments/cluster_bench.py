"""Bench cells for scale-out: direct vs through nginx, memory vs Redis broker, 1 vs 3 instances.

Each cell starts its own cluster (experiments/cluster.py), subscribes SSE and WS clients with
pushlab's asyncio clients, and measures (1) latency of a paced stream, publish stamp → receive,
and (2) throughput: a burst published by concurrent publishers, delivered events per second until
every subscriber has everything. :data:`CELLS` is plain data so the bench runner can take it.
On 2 shared cores these figures rank configurations; they are not server capacity.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from experiments.cluster import Cluster
from experiments.fleet import Fleet, publish_paced
from experiments.metrics import summarize
from experiments.records import ClusterBenchCell, ClusterSetup, check

CELLS: list[ClusterSetup] = [
    {"name": "direct-1-memory", "via": "direct", "instances": 1, "broker": "memory://"},
    {"name": "direct-1-redis", "via": "direct", "instances": 1, "broker": "redis"},
    {"name": "nginx-1-redis", "via": "nginx", "instances": 1, "broker": "redis"},
    {"name": "nginx-3-redis", "via": "nginx", "instances": 3, "broker": "redis"},
]


async def _burst(url: str, topic: str, count: int, verify: Any, concurrency: int = 8) -> float:
    """Publish ``count`` events with ``concurrency`` publishers; returns seconds taken."""
    per = count // concurrency
    async with httpx.AsyncClient(verify=verify, trust_env=False, timeout=10) as http:

        async def one(k: int) -> None:
            for i in range(per):
                r = await http.post(
                    f"{url}/publish", params={"topic": topic}, json={"k": k, "i": i}
                )
                r.raise_for_status()

        t0 = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(concurrency)))
        return time.perf_counter() - t0


async def measure_cell(
    cell: ClusterSetup,
    root: Path,
    redis_url: str,
    subscribers: int = 10,
    events: int = 200,
    rate: float = 100.0,
    burst: int = 2000,
) -> ClusterBenchCell:
    """Run one cell; returns its figures (parameters included)."""
    broker = redis_url if cell["broker"] == "redis" else cell["broker"]
    cluster = Cluster(root / cell["name"], instances=cell["instances"], broker=broker).start()
    try:
        assert cluster.tls is not None
        nginx = cell["via"] == "nginx"
        url = cluster.url if nginx else cluster.instance_urls[0]
        verify: Any = cluster.tls.client_context() if nginx else True
        per = max(1, subscribers // 2)
        fleet = await Fleet.start([url], "lat", ["sse", "ws"], per, verify)
        await publish_paced(url, "lat", events, rate, verify)
        await fleet.until(lambda m: len(m.seqs) >= events, 30, "latency run")
        latencies = [x for m in fleet.members for x in m.latency_ms]
        await fleet.stop()
        fleet = await Fleet.start([url], "tput", ["sse", "ws"], per, verify)
        t0 = time.perf_counter()
        publish_s = await _burst(url, "tput", burst, verify)
        complete = await fleet.until(lambda m: len(m.seqs) >= burst // 8 * 8, 60, "burst")
        deliver_s = time.perf_counter() - t0
        delivered = sum(len(m.seqs) for m in fleet.members)
        await fleet.stop()
    finally:
        cluster.stop()
    out = dict(cell) | {"subscribers": per * 2, "events": events, "rate": rate, "burst": burst}
    out |= {k: round(v, 3) for k, v in summarize(latencies, "latency_ms_").items()}
    out |= {
        "publish_per_s": round(burst // 8 * 8 / publish_s, 1),
        "deliveries_per_s": round(delivered / deliver_s, 1),
        "burst_complete": complete,
    }
    return check(ClusterBenchCell, out, f"cluster bench cell {cell['name']}")
