"""The SSE-behind-a-proxy pitfall, measured: event latency through nginx with buffering on vs off.

With ``proxy_buffering on`` (and the app's ``X-Accel-Buffering: no`` ignored, as a proxy or CDN
that does not know the header would) nginx holds SSE bytes until a buffer fills: events arrive late
and in lumps, or not at all at a low rate. The shipped config turns buffering off for /sse.
"""

from __future__ import annotations

import ssl
from typing import Any

from experiments.fleet import Fleet, publish_paced
from experiments.metrics import summarize


async def sse_latency(
    url: str, verify: ssl.SSLContext | bool, events: int = 40, rate: float = 40.0, wait_s: float = 2
) -> dict[str, Any]:
    """One SSE client; publish ``events`` at ``rate``; latency of what arrived within ``wait_s``."""
    fleet = await Fleet.start([url], "buffering", ["sse"], 1, verify, timeout=wait_s)
    # When buffered, even the stream's `ready` preamble may be held: publish anyway.
    await publish_paced(url, "buffering", events, rate, verify)
    await fleet.until(lambda m: len(m.seqs) >= events, wait_s, "all events")
    await fleet.stop()
    member = fleet.members[0]
    cell: dict[str, Any] = {"events": events, "rate": rate, "delivered_in_time": len(member.seqs)}
    cell |= {k: round(v, 3) for k, v in summarize(member.latency_ms, "latency_ms_").items()}
    return cell
