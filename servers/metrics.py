"""Prometheus metrics, one :class:`CollectorRegistry` per app (no process-global state).

Hot-path cost: transports count events and bytes in two plain ints on their connection per
written batch; :meth:`servers.connections.Connections.flush_counts` moves them into the counters
at each scrape and when the connection closes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from starlette.responses import Response

router = APIRouter()

RTT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Every pushlab metric, registered in this app's own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.connections = Gauge(
            "pushlab_connections", "Open feed connections", ["transport"], registry=r
        )
        self.events_sent = Counter(
            "pushlab_events_sent", "Events written to clients", ["transport"], registry=r
        )
        self.events_direct = Counter(
            "pushlab_events_direct",
            "Of the events written, those the publisher wrote to the socket itself",
            ["transport"],
            registry=r,
        )
        self.bytes_sent = Counter(
            "pushlab_bytes_sent", "Event payload bytes written", ["transport"], registry=r
        )
        self.errors = Counter(
            "pushlab_errors", "Errors by transport and kind", ["transport", "kind"], registry=r
        )
        self.closes = Counter(
            "pushlab_closes", "Closed connections by close code", ["transport", "code"], registry=r
        )
        self.rejected = Counter(
            "pushlab_rejected",
            "Refused requests/upgrades by status",
            ["transport", "status"],
            registry=r,
        )
        self.ping_rtt = Histogram(
            "pushlab_ping_rtt_seconds",
            "WebSocket heartbeat round trip",
            buckets=RTT_BUCKETS,
            registry=r,
        )

    def child(self, metric: Counter | Gauge, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: a poll answer updates several per request."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this app's registry."""
    st = request.app.state.pushlab
    st.conns.flush_counts()
    m: Metrics = st.metrics
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
