"""Shared fixtures: settings and real servers on free loopback ports."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from feed.settings import Settings
from servers.launch import ServerThread
from tests.redis_support import own_redis, redis_prefix  # noqa: F401 (fixtures)

# The suite's own knobs (PUSHLAB_TEST_MS, _FULL, _REDIS_URL) were read by the imports above. Every
# PUSHLAB_* variable goes now: the servers the tests start inherit settings from this environment
# (servers.launch.child_env, the lab's one policy), and a developer's exported PUSHLAB_SSE_IMPL
# must not change what a test checks. Tests that want a setting pass it.
for _knob in [k for k in os.environ if k.startswith("PUSHLAB_")]:
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


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A local CA and a certificate for 127.0.0.1 (experiments.tls, as the cluster uses)."""
    from experiments.tls import make_tls

    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def serve() -> Iterator[Callable[..., ServerThread]]:
    """Start real servers; every one is stopped at teardown."""
    started: list[ServerThread] = []

    def start(settings: Settings, **kwargs: Any) -> ServerThread:
        server = ServerThread(settings, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def live(serve: Callable[..., ServerThread], settings: Settings) -> ServerThread:
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
