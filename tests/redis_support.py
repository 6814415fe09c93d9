"""Real Redis for tests: the shared server (unique prefix, own keys deleted) or a private one."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from experiments.processes import delete_prefix
from tests.support import IN_CI, free_port, require, wait_until

SHARED_URL = os.environ.get("PUSHLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis(url: str = SHARED_URL) -> str:
    """The URL of a reachable Redis; skip when there is none (fail under CI=true)."""
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        message = f"Redis is not reachable at {url}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return url


def unique_prefix(name: str = "t") -> str:
    """A key prefix nobody else uses."""
    return f"pushlab-test-{name}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A unique prefix on the shared Redis; this test's keys are deleted afterwards."""
    require_redis()
    prefix = unique_prefix()
    yield prefix
    delete_prefix(SHARED_URL, prefix)


class OwnRedis:
    """A private ``redis-server`` on a free port, stopped by PID (never the shared one)."""

    def __init__(self) -> None:
        self.binary = require("redis-server", "the Redis restart tests")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="pushlab-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> OwnRedis:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._up, 10, "redis-server")
        return self

    def _up(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.2).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self, down_s: float = 0.3) -> None:
        """Stop (losing every key: no persistence), stay down ``down_s``, start on the same port."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    """A private redis-server, killed at teardown."""
    server = OwnRedis().start()
    yield server
    server.cleanup()
