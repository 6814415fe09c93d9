"""The profiling readers count events and measure their latency against a real server."""

from __future__ import annotations

import pytest

from experiments import readers


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_readers_count_events_and_latency(serve, settings, transport):
    """Ticker events reach every reader; latency percentiles come from the events' ts_ns."""
    server = serve(settings.replace(ticker_rate=50, ticker_topic="ticks"))
    out = await readers.run(transport, server.port, 3, readers.WARMUP_S + 1.0)
    assert out["events"] >= 3 * 25
    p50, p99 = out["latency_ms_p50"], out["latency_ms_p99"]
    assert p50 is not None and p99 is not None and 0 < p50 <= p99 < 10_000


def test_no_events_after_warmup_means_no_percentile():
    """A run too short to get past the warm-up reports no latency instead of a made-up one."""
    lat = readers.Latencies()
    lat.add(b'{"topic":"ticks","seq":1,"ts_ns":1,"data":0}')
    assert lat.percentile(0.99) is None
