"""Shared fixtures: settings and real servers on free loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from feed.settings import Settings
from tests.redis_support import own_redis, redis_prefix  # noqa: F401 (fixtures)
from tests.support import LiveServer


@pytest.fixture
def sse_impl() -> str:
    """The SSE implementation served: the default, unless a test parametrizes ``sse_impl``
    (``tests.support.each_sse_impl``), which overrides this fixture for ``settings`` too."""
    return Settings().sse_impl


@pytest.fixture
def settings(sse_impl: str) -> Settings:
    """Defaults with the ticker off, so tests publish exactly what they check."""
    return Settings.from_env({}, ticker_rate=0, sse_impl=sse_impl)


@pytest.fixture
def serve() -> Iterator[Callable[..., LiveServer]]:
    """Start real servers; every one is stopped at teardown."""
    started: list[LiveServer] = []

    def start(settings: Settings, **kwargs: Any) -> LiveServer:
        server = LiveServer(settings, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def live(serve: Callable[..., LiveServer], settings: Settings) -> LiveServer:
    """One server with default settings and no ticker."""
    return serve(settings)
