"""``--broker`` selects the backend; a server on the Redis broker serves the normal contract."""

from __future__ import annotations

import httpx
import pytest

from feed.memory import MemoryBroker
from feed.redis_broker import RedisBroker
from feed.settings import Settings
from servers.app import make_broker
from tests.redis_support import SHARED_URL


def test_broker_url_selects_backend():
    """memory:// and redis:// map to their backends; anything else is refused."""
    assert isinstance(make_broker(Settings(broker="memory://")), MemoryBroker)
    redis_broker = make_broker(Settings(broker="redis://127.0.0.1:6379/0", redis_prefix="p"))
    assert isinstance(redis_broker, RedisBroker) and redis_broker.keys.prefix == "p"
    with pytest.raises(ValueError, match="unsupported broker"):
        make_broker(Settings(broker="kafka://x"))


def test_prefix_comes_from_the_environment():
    """PUSHLAB_REDIS_PREFIX is a setting like any other."""
    assert Settings.from_env({"PUSHLAB_REDIS_PREFIX": "run7"}).redis_prefix == "run7"


@pytest.mark.redis
async def test_two_servers_share_one_feed(serve, settings, redis_prefix):
    """Publish on one server, poll and long-poll the other: same seqs, same bytes."""
    cfg = settings.replace(broker=SHARED_URL, redis_prefix=redis_prefix)
    a, b = serve(cfg), serve(cfg)
    async with httpx.AsyncClient(trust_env=False) as http:
        for i in range(3):
            r = await http.post(f"{a.url}/publish", params={"topic": "t"}, json={"i": i})
            assert r.json()["seq"] == i + 1
        got = (await http.get(f"{b.url}/poll", params={"topic": "t", "since": 1})).json()
        assert [e["seq"] for e in got["events"]] == [2, 3]
        held = await http.get(
            f"{b.url}/long-poll", params={"topic": "t", "since": 3, "timeout": 0.2}
        )
        assert held.status_code == 204 and held.headers["pushlab-cursor"] == "3"
        health = (await http.get(f"{b.url}/healthz")).json()["broker"]
    assert health["backend"] == "redis"
