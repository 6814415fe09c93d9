"""Shared fixtures: settings and real servers on free loopback ports."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from feed.settings import Settings
from tests.redis_support import own_redis, redis_prefix  # noqa: F401 (fixtures)
from tests.support import LiveServer

# The suite's own knobs (PUSHLAB_TEST_MS, _FULL, _REDIS_URL) were read by the imports above. The
# lab code under test builds Settings from every PUSHLAB_* variable and refuses the names it does
# not know, so with PUSHLAB_TEST_MS=3 exported, rtt, compression and bench servers failed to start.
for _knob in [k for k in os.environ if k.startswith("PUSHLAB_TEST_")]:
    del os.environ[_knob]


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


@pytest.fixture(autouse=True)
def _uvicorn_logging_left_alone() -> Iterator[None]:
    """In-process servers must pass ``log_config=None``: uvicorn's default config binds handlers
    to this test's captured stderr, and later tests' servers log to that closed file ("Logging
    error" in the middle of the run)."""
    yield
    left = {}
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        # uvicorn's own handlers are plain StreamHandlers (pytest's capture handlers subclass it)
        stale = [h for h in logger.handlers if type(h) is logging.StreamHandler]
        for h in stale:
            logger.removeHandler(h)  # one failure here, not one in every later test
        if stale:
            left[name] = stale
    assert not left, f"uvicorn loggers got handlers {left}: pass log_config=None"
