"""A message-broker feed source (seed Q39): consume a RabbitMQ queue, publish each message.

``pushlab bridge rabbitmq --queue Q [--amqp URL] [--url SERVER] [--topic T]`` reads messages
from ``Q`` (aio-pika) and ``POST /publish``es each JSON body to a pushlab server (or the nginx
front of a cluster). Delivery is at-least-once: a message is acked only after the server answered
200, so a bridge that dies between the two republishes it on restart (a duplicate event with a
new seq; downstream dedupe would need an id in the payload). A body that is not JSON, or that the
server refuses with a 4xx, is rejected without requeue (to the queue's dead-letter exchange if it
has one) and counted: retrying it could never succeed. 5xx and connection errors are retried.
A message header ``pushlab-topic`` overrides ``--topic`` per message.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from dataclasses import dataclass

import aio_pika
import httpx

from feed.codec import loads

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
TOPIC_HEADER = "pushlab-topic"


@dataclass
class BridgeStats:
    """What the bridge did."""

    published: int = 0
    rejected: int = 0
    retried: int = 0


async def bridge(
    amqp_url: str,
    queue_name: str,
    server_url: str,
    topic: str,
    *,
    max_messages: int | None = None,
    idle_timeout_s: float | None = None,
    prefetch: int = 100,
    verify: ssl.SSLContext | bool = True,
    stats: BridgeStats | None = None,
) -> BridgeStats:
    """Consume until ``max_messages`` were handled or the queue was idle ``idle_timeout_s``."""
    stats = stats or BridgeStats()
    connection = await aio_pika.connect_robust(amqp_url)
    async with (
        connection,
        httpx.AsyncClient(verify=verify, trust_env=False, timeout=10) as http,
    ):
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.declare_queue(queue_name, passive=True)
        handled = 0
        async with queue.iterator() as messages:
            while max_messages is None or handled < max_messages:
                try:
                    async with asyncio.timeout(idle_timeout_s):
                        message = await anext(messages)
                except TimeoutError:
                    break
                await _forward(http, server_url, topic, message, stats)
                handled += 1
    return stats


async def _forward(
    http: httpx.AsyncClient,
    server_url: str,
    topic: str,
    message: aio_pika.abc.AbstractIncomingMessage,
    stats: BridgeStats,
) -> None:
    target = str(message.headers.get(TOPIC_HEADER) or topic)
    try:
        loads(message.body)
    except ValueError:
        stats.rejected += 1
        await message.reject(requeue=False)
        return
    for attempt in range(50):  # bounded: ~10 s of retries, then the message goes back
        try:
            r = await http.post(
                f"{server_url.rstrip('/')}/publish",
                params={"topic": target},
                content=message.body,
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError:
            r = None
        if r is not None and r.status_code == 200:
            stats.published += 1
            await message.ack()
            return
        if r is not None and 400 <= r.status_code < 500:
            stats.rejected += 1
            await message.reject(requeue=False)
            return
        stats.retried += 1
        await asyncio.sleep(min(0.01 * 2**attempt, 1.0))
    await message.nack(requeue=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``pushlab bridge``."""
    parser.add_argument("source", choices=["rabbitmq"])
    parser.add_argument("--queue", required=True, help="existing queue to consume")
    parser.add_argument("--amqp", default=DEFAULT_AMQP, help="RabbitMQ URL")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="pushlab server")
    parser.add_argument("--topic", default="ticks", help="feed topic (header overrides)")
    parser.add_argument("--cafile", help="CA file to verify an https server")


def run(args: argparse.Namespace) -> int:
    """Bridge until interrupted."""
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=args.cafile) if args.cafile else True
    )
    stats = asyncio.run(bridge(args.amqp, args.queue, args.url, args.topic, verify=verify))
    print(stats)
    return 0
