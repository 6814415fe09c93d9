"""The delivery contract again, every transport, with the server on the Redis broker.

The test functions are those of test_delivery.py; only the ``settings`` fixture changes. Left out:
the restart test (it injects a memory broker), the fatal-error test (broker-independent) and
the exact-history test (Redis trims with
``MAXLEN ~``, so the oldest retained seq is approximate; tests/feed/test_redis_broker.py covers it).
"""

from __future__ import annotations

import pytest

from feed.settings import Settings
from tests.clients.test_delivery import (  # noqa: F401 (collected here with Redis settings)
    http,
    test_cursor_ahead_of_server_is_signalled,
    test_resume_after_client_side_drop,
    test_resume_after_server_side_close,
    test_sequence_arrives_in_order_exactly_once,
    test_topics_stay_apart,
)
from tests.redis_support import SHARED_URL

pytestmark = pytest.mark.redis


@pytest.fixture
def settings(redis_prefix: str, sse_impl: str, transport: str) -> Settings:
    """Ticker off, Redis broker, this test's own key prefix, the SSE implementation under test;
    for the WebTransport client, HTTP/3 on too (as in test_delivery.py)."""
    return Settings.from_env(
        {},
        ticker_rate=0,
        broker=SHARED_URL,
        redis_prefix=redis_prefix,
        sse_impl=sse_impl,
        webtransport_port=0 if transport == "wt" else -1,
    )
