"""The RabbitMQ feed source against the real RabbitMQ on 127.0.0.1:5672 and a real server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aio_pika
import httpx
import pytest

from clients.rabbitmq_bridge import DEFAULT_AMQP, TOPIC_HEADER, bridge
from tests.support import IN_CI


@pytest.fixture
async def queue() -> AsyncIterator[tuple[aio_pika.abc.AbstractChannel, str]]:
    """A uniquely named queue on the real RabbitMQ, deleted afterwards."""
    try:
        connection = await aio_pika.connect(DEFAULT_AMQP, timeout=3)
    except Exception as exc:  # noqa: BLE001 (any connect failure means: no RabbitMQ here)
        message = f"RabbitMQ is not reachable at {DEFAULT_AMQP}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    name = f"pushlab-test-{uuid.uuid4().hex[:12]}"
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=False)
        yield channel, name
        await channel.queue_delete(name)


async def send(channel: aio_pika.abc.AbstractChannel, queue: str, body: bytes, **headers) -> None:
    message = aio_pika.Message(body=body, headers=headers or None)
    await channel.default_exchange.publish(message, routing_key=queue)


async def test_queue_messages_become_feed_events_in_order(queue, live):
    """JSON messages publish in queue order; bad JSON is rejected; a header picks the topic."""
    channel, name = queue
    for i in range(30):
        await send(channel, name, b'{"n": %d}' % i)
    await send(channel, name, b"not json")
    await send(channel, name, b'{"other": true}', **{TOPIC_HEADER: "side"})
    stats = await bridge(DEFAULT_AMQP, name, live.url, "mq", max_messages=32, idle_timeout_s=10)
    assert (stats.published, stats.rejected) == (31, 1)
    async with httpx.AsyncClient(trust_env=False) as http:
        main = (await http.get(f"{live.url}/poll", params={"topic": "mq", "since": 0})).json()
        side = (await http.get(f"{live.url}/poll", params={"topic": "side", "since": 0})).json()
    assert [e["data"]["n"] for e in main["events"]] == list(range(30))
    assert [e["data"] for e in side["events"]] == [{"other": True}]
    declared = await channel.declare_queue(name, passive=True)
    assert declared.declaration_result.message_count == 0  # everything acked or rejected
