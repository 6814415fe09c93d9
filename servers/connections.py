"""The live-connection registry: ids, per-IP cap, gauge, and connect/disconnect logs.

Every streaming connection (ws, sse, stream, long-poll) is registered for its lifetime. That one
place enforces ``max_conns_per_ip`` (HTTP 429 before any upgrade or stream starts), keeps the
``pushlab_connections`` gauge, writes the structured connect/disconnect records, and lets the
shutdown drain wait until every stream has said goodbye.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections import Counter as Tally
from dataclasses import dataclass, field

from feed.exceptions import TooManyConnections
from servers.logs import elapsed, log_conn
from servers.metrics import Metrics

# Transports whose events reach the counters through flush_counts (polling answers count
# themselves once per response, see servers.short_poll.answer).
STREAMED = ("ws", "sse", "stream")


@dataclass(slots=True)
class Conn:
    """One live connection; transports fill in ``code``/``reason`` and the counts as they go."""

    id: str
    transport: str
    remote: str
    ip: str
    started: float = field(default_factory=time.monotonic)
    user: str | None = None
    code: int | None = None
    reason: str = ""
    events: int = 0
    bytes: int = 0
    # Of ``events``, those the publisher wrote to the socket itself (servers/fastpath/ws_direct.py,
    # servers/fastpath/sse_direct.py).
    direct_events: int = 0
    # What of events/bytes/direct the Prometheus counters already have (see flush_counts).
    flushed_events: int = 0
    flushed_bytes: int = 0
    flushed_direct: int = 0

    def closing(self, code: int | None, reason: str) -> None:
        """Record how this connection ends (first call wins)."""
        if self.code is None and not self.reason:
            self.code, self.reason = code, reason


class Registration:
    """``with registry.open(...) as conn``: unregisters on exit.

    A class, not a ``@contextmanager``: that kept a generator frame and its wrapper (~0.6 KiB,
    tracemalloc) alive per open connection.
    """

    __slots__ = ("registry", "conn")

    def __init__(self, registry: Connections, conn: Conn) -> None:
        self.registry = registry
        self.conn = conn

    def __enter__(self) -> Conn:
        return self.conn

    def __exit__(self, t: object, exc: BaseException | None, tb: object) -> None:
        self.registry.close(self.conn, exc)


class Connections:
    """Registry of live connections for one app."""

    def __init__(self, max_per_ip: int, metrics: Metrics) -> None:
        self.max_per_ip = max_per_ip
        self.metrics = metrics
        self.live: dict[str, Conn] = {}
        self._per_ip: Tally[str] = Tally()
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid():x}"
        self._empty = asyncio.Event()
        self._empty.set()

    def by_transport(self) -> dict[str, int]:
        """Live connections per transport (for /healthz)."""
        return dict(Tally(c.transport for c in self.live.values()))

    def check_ip(self, ip: str, transport: str) -> None:
        """Raise :class:`TooManyConnections` when ``ip`` is at its cap."""
        if self.max_per_ip and self._per_ip[ip] >= self.max_per_ip:
            self.metrics.rejected.labels(transport, "429").inc()
            detail = f"at most {self.max_per_ip} live connections per client IP"
            # INFO: the cap refusing one client is the policy working, not a server problem.
            log_conn(
                "reject",
                logging.INFO,
                transport=transport,
                remote=ip,
                status=429,
                error=TooManyConnections.code,
                detail=detail,
            )
            raise TooManyConnections(detail)

    def open(self, transport: str, client: tuple[str, int] | None) -> Registration:
        """Register a connection for a ``with`` block; refuses past the per-IP cap."""
        ip, port = client if client is not None else ("unknown", 0)
        self.check_ip(ip, transport)
        conn = Conn(f"{self._prefix}-{next(self._ids)}", transport, f"{ip}:{port}", ip)
        self.live[conn.id] = conn
        self._per_ip[ip] += 1
        self._empty.clear()
        self.metrics.child(self.metrics.connections, transport).inc()
        log_conn("connect", conn_id=conn.id, transport=transport, remote=conn.remote)
        return Registration(self, conn)

    def close(self, conn: Conn, exc: BaseException | None) -> None:
        """Unregister ``conn``: gauge, counters, the per-IP tally and the disconnect record."""
        if exc is not None:
            conn.closing(None, f"error: {type(exc).__name__}")
        transport, ip = conn.transport, conn.ip
        self.metrics.child(self.metrics.connections, transport).dec()
        self.flush_counts(conn)
        del self.live[conn.id]
        self._per_ip[ip] -= 1
        if not self._per_ip[ip]:
            del self._per_ip[ip]
        if not self.live:
            self._empty.set()
        code = conn.code
        self.metrics.child(
            self.metrics.closes, transport, str(code if code is not None else conn.reason)
        ).inc()
        log_conn(
            "disconnect",
            conn_id=conn.id,
            transport=transport,
            remote=conn.remote,
            user=conn.user,
            code=code,
            reason=conn.reason,
            duration_s=elapsed(conn.started),
            events=conn.events,
            bytes=conn.bytes,
        )

    def flush_counts(self, conn: Conn | None = None) -> None:
        """Move counts since the last flush into ``pushlab_events_sent``/``bytes_sent``/``direct``.

        Transports only bump two plain ints per written batch; the Prometheus counters (a lock
        and a float each, ~3% of server CPU at 40k deliveries/s) are brought up to date here, at
        every ``/metrics`` scrape and when a connection closes, so a scrape still sees every event.
        """
        for c in self.live.values() if conn is None else (conn,):
            if c.transport not in STREAMED:
                continue
            events, nbytes = c.events - c.flushed_events, c.bytes - c.flushed_bytes
            direct = c.direct_events - c.flushed_direct
            if direct:
                self.metrics.events_direct.labels(c.transport).inc(direct)
                c.flushed_direct = c.direct_events
            if events:
                self.metrics.events_sent.labels(c.transport).inc(events)
                c.flushed_events = c.events
            if nbytes:
                self.metrics.bytes_sent.labels(c.transport).inc(nbytes)
                c.flushed_bytes = c.bytes

    async def wait_empty(self, timeout: float) -> bool:
        """Wait until no connection is live; False if ``timeout`` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._empty.wait()
        except TimeoutError:
            return False
        return True
