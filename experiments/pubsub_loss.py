"""The seed's "just use Redis pub/sub", measured: what a subscriber loses while disconnected.

Two designs, same pattern: a publisher sends ``count`` messages at ``rate``/s; after receiving
``drop_after`` of them the subscriber loses its Redis connection for ``down_ms`` and comes back.

- ``pubsub``: plain PUBLISH/SUBSCRIBE. Redis forgets a message once delivered to whoever is
  subscribed at that instant (at-most-once): what was published while the subscriber was away is
  gone.
- ``pushlab``: the Redis broker (Streams). The subscriber is a whole broker instance that is closed
  (its Redis connections go) and replaced by a new one, which resumes after the last seq it got.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import Redis

from experiments.records import PubsubLossCell
from feed.codec import loads
from feed.redis_broker import RedisBroker


async def _paced(count: int, rate: float, send: Any) -> None:
    start = time.perf_counter()
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        await send(i)


async def plain_pubsub(
    url: str, channel: str, count: int, rate: float, drop_after: int, down_ms: float
) -> PubsubLossCell:
    """Received and lost counts over plain pub/sub."""
    received: list[int] = []
    pub = Redis.from_url(url)

    async def subscriber() -> None:
        for phase in range(2):
            sub = Redis.from_url(url)
            ps = sub.pubsub()
            await ps.subscribe(channel)
            subscribed.set()
            try:
                deadline = time.monotonic() + count / rate + 5
                while time.monotonic() < deadline and len(received) < count:
                    msg = await ps.get_message(ignore_subscribe_messages=True, timeout=0.2)
                    if msg is None and finished.is_set():
                        break  # the publisher is done and nothing more is coming
                    if msg is not None:
                        received.append(int(msg["data"]))
                        if phase == 0 and len(received) >= drop_after:
                            break
            finally:
                await ps.aclose()  # type: ignore[no-untyped-call]
                await sub.aclose()  # the connection is gone: Redis keeps nothing for us
            if phase == 0:
                await asyncio.sleep(down_ms / 1000)

    subscribed, finished = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(subscriber())
    await subscribed.wait()
    await _paced(count, rate, lambda i: pub.publish(channel, str(i)))
    finished.set()
    async with asyncio.timeout(count / rate + 15):
        await task
    await pub.aclose()
    return _cell("pubsub", count, received, down_ms)


async def pushlab_streams(
    url: str, prefix: str, count: int, rate: float, drop_after: int, down_ms: float
) -> PubsubLossCell:
    """Received and lost counts over pushlab's Redis broker, resuming by seq."""
    publisher = RedisBroker(url, prefix, history=max(count, 1000))
    await publisher.start()
    received: list[int] = []
    ready = asyncio.Event()

    async def subscriber() -> None:
        since: int | None = None
        for phase in range(2):
            broker = RedisBroker(url, prefix, history=max(count, 1000))
            await broker.start()
            try:
                async with broker.subscribe("loss", since, count + 10) as sub:
                    ready.set()
                    deadline = time.monotonic() + count / rate + 5
                    while time.monotonic() < deadline and len(received) < count:
                        try:
                            async with asyncio.timeout(0.2):
                                batch = await sub.next_batch()
                        except TimeoutError:
                            continue
                        received.extend(int(loads(e.json)["data"]) for e in batch)
                        since = batch[-1].seq
                        if phase == 0 and len(received) >= drop_after:
                            break
            finally:
                await broker.close()  # the whole instance and its Redis connections go away
            if phase == 0:
                await asyncio.sleep(down_ms / 1000)

    task = asyncio.create_task(subscriber())
    await ready.wait()
    await _paced(count, rate, lambda i: publisher.publish("loss", i))
    async with asyncio.timeout(count / rate + 15):
        await task
    await publisher.close()
    return _cell("pushlab-streams", count, received, down_ms)


def _cell(design: str, count: int, received: list[int], down_ms: float) -> PubsubLossCell:
    return {
        "design": design,
        "down_ms": down_ms,
        "published": count,
        "received": len(set(received)),
        "lost": count - len(set(received)),
        "duplicates": len(received) - len(set(received)),
    }
