"""What a retained byte of history costs: server RSS growth per byte held, over real publishes.

    python -m experiments.history_memory                       # 2,000 x 16 KiB, budgets lifted
    python -m experiments.history_memory --count 3000 --size 61440 --default-budgets
    python -m experiments.history_memory --subscribers        # + one WS and one SSE reader
    python -m experiments.history_memory --topics 10000       # empty topics and tombstones

Starts a server child (ticker off), reads its RSS, publishes ``count`` JSON strings of ``size``
bytes to one topic over HTTP, waits for the subscribers (if any) to have everything, reads the
RSS and the broker's ``history_bytes`` (/healthz) again, and prints one JSON line: RSS growth per
held byte (the figure docs/protocol.md "Memory bounds" states) and per uploaded byte. Budgets are
lifted (1 GiB per topic and in total) unless ``--default-budgets``. With ``--subscribers`` a
WebSocket and an SSE reader take every event as it is published, so direct delivery caches each
event's WS frame and HTTP chunk on it: the worst case for memory per held byte. Loopback only;
the child is stopped by PID at exit.

``--topics N`` measures in process instead (tracemalloc, no server): the bytes per topic held
open by one subscriber with no event, per subscription alone, and per tombstone left by a
reclaimed topic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tracemalloc
from typing import Any

import httpx
from websockets.asyncio.client import connect

from experiments.children import rss_bytes
from feed.broker import Subscription
from feed.memory import MemoryBroker
from servers.launch import ServerProcess

LIFTED = str(1 << 30)


async def _ws_reader(url: str, count: int) -> None:
    async with connect(url + "/ws?topic=mem&since=0", max_size=None) as ws:
        seen = 0
        while seen < count:
            if '"type"' not in str(await ws.recv())[:20]:
                seen += 1


async def _sse_reader(client: httpx.AsyncClient, count: int) -> None:
    async with client.stream("GET", "/sse", params={"topic": "mem", "since": 0}) as r:
        seen = 0
        async for line in r.aiter_lines():
            if line.startswith("id: ") and seen < count:
                seen += 1
            if seen >= count:
                return


async def measure(
    count: int, size: int, subscribers: bool, default_budgets: bool
) -> dict[str, Any]:
    env = {"PUSHLAB_HISTORY": str(max(count, 1)), "PUSHLAB_LOG_LEVEL": "warning"}
    if not default_budgets:
        env |= {"PUSHLAB_HISTORY_BYTES": LIFTED, "PUSHLAB_HISTORY_TOTAL_BYTES": LIFTED}
    with ServerProcess(env=env) as srv:
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as c:
            await c.post("/publish", params={"topic": "warm"}, json="x" * size)
            held_before = (await c.get("/healthz")).json()["broker"]["history_bytes"]
            before = rss_bytes(srv.pid)
            readers = []
            if subscribers:
                readers = [
                    asyncio.create_task(_ws_reader(srv.ws_url, count)),
                    asyncio.create_task(_sse_reader(c, count)),
                ]
                await asyncio.sleep(0.5)  # both subscribed before the first publish
            blob = "x" * size
            uploaded = 0
            for _ in range(count):
                r = await c.post("/publish", params={"topic": "mem"}, json=blob)
                r.raise_for_status()
                uploaded += len(r.request.content)
            async with asyncio.timeout(120):
                await asyncio.gather(*readers)
            broker = (await c.get("/healthz")).json()["broker"]
            after = rss_bytes(srv.pid)
    held = broker["history_bytes"] - held_before
    grown = after - before
    return {
        "count": count,
        "size": size,
        "subscribers": subscribers,
        "default_budgets": default_budgets,
        "history_events": broker["history_events"] - 1,
        "held_bytes": held,
        "uploaded_bytes": uploaded,
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "rss_per_held_byte": round(grown / held, 2) if held else None,
        "rss_per_uploaded_byte": round(grown / uploaded, 2),
    }


async def topic_costs(n: int) -> dict[str, Any]:
    """Python-tracked bytes per empty held topic, per subscription, per tombstone."""

    def traced() -> int:
        return tracemalloc.get_traced_memory()[0]

    broker = MemoryBroker(10, max_topics=n, max_subscriber_topics=n)
    names = [f"topic-{i:06d}" for i in range(2 * n)]  # made before measuring, like real names
    tracemalloc.start()
    try:
        before = traced()
        bare = [Subscription("t", 10, 0) for _ in range(n)]
        per_subscription = (traced() - before) / n
        del bare
        before = traced()
        held = [broker.subscribe(name, None, 10) for name in names[:n]]
        per_held_topic = (traced() - before) / n
        for cm in held:
            await cm.__aexit__(None, None, None)
        del held
        for name in names[:n]:
            await broker.publish(name, 0)
        before = traced()
        for name in names[n:]:  # each takes the room of an idle one: n tombstones
            await broker.publish(name, 0)
        # n topics of one event replaced n alike: what grew is the tombstones (their name
        # strings excluded: made above, as a request's would be; add ~50 B + the name's length)
        per_tombstone = (traced() - before) / n
        tombstones = broker.stats()["tombstones"]
    finally:
        tracemalloc.stop()
    return {
        "topics": n,
        "per_held_empty_topic_with_subscription": round(per_held_topic),
        "per_subscription": round(per_subscription),
        "per_held_empty_topic": round(per_held_topic - per_subscription),
        "tombstones": tombstones,
        "per_tombstone": round(per_tombstone),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2_000, help="events published")
    parser.add_argument("--size", type=int, default=16 * 1024, help="bytes of each JSON string")
    parser.add_argument("--subscribers", action="store_true", help="one WS and one SSE reader")
    parser.add_argument("--default-budgets", action="store_true", help="keep the byte budgets")
    parser.add_argument("--topics", type=int, help="measure N empty topics and tombstones")
    args = parser.parse_args(argv)
    if args.topics:
        result = asyncio.run(topic_costs(args.topics))
    else:
        result = asyncio.run(measure(args.count, args.size, args.subscribers, args.default_budgets))
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
