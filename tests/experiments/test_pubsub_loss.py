"""Plain pub/sub loses what is published while a subscriber is away; pushlab's Streams don't."""

from __future__ import annotations

import pytest

from experiments.pubsub_loss import plain_pubsub, pushlab_streams
from tests.redis_support import SHARED_URL

pytestmark = pytest.mark.redis


async def test_pubsub_loses_and_streams_resume(redis_prefix):
    """A 150 ms outage mid-stream: pub/sub loses messages, the Streams broker loses none."""
    plain = await plain_pubsub(SHARED_URL, f"{redis_prefix}:chan", 300, 500.0, 60, 150)
    ours = await pushlab_streams(SHARED_URL, redis_prefix, 300, 500.0, 60, 150)
    assert plain["lost"] > 0, plain
    assert plain["received"] + plain["lost"] == 300
    assert (ours["lost"], ours["duplicates"]) == (0, 0), ours
