"""Frozen settings built from ``PUSHLAB_*`` environment variables, defaults and overrides.

Config flows one way: :func:`Settings.from_env` is called once at the edge (CLI, test fixture),
the frozen object is passed explicitly to the app, clients and runs, and ``as_dict()`` is saved in
every result's metadata. An unknown ``PUSHLAB_*`` variable is an error, so a typo cannot silently
leave a default in place.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

ENV_PREFIX = "PUSHLAB_"
# The test suite's own knobs (PUSHLAB_TEST_MS, PUSHLAB_TEST_FULL, ...): not settings, and a server
# started from a test's environment must not refuse them as typos.
TEST_PREFIX = "PUSHLAB_TEST_"

DEFAULT_HISTORY = 10_000
# Memory bounds (docs/protocol.md "Memory bounds"), in bytes as feed.history.retained_size counts.
DEFAULT_HISTORY_BYTES = 64 * 1024 * 1024
DEFAULT_HISTORY_TOTAL_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_SUBSCRIBER_TOPICS = 1_000
DEFAULT_SSE_RETRY_MS = 1_000
DEFAULT_KEEPALIVE_S = 15.0
DEFAULT_LONG_POLL_TIMEOUT_S = 20.0
DEFAULT_LONG_POLL_MAX_TIMEOUT_S = 30.0
DEFAULT_WS_PING_INTERVAL_S = 20.0
DEFAULT_WS_PING_TIMEOUT_S = 20.0
# Development only (docs/protocol.md): anyone can read it here. 64 bytes, so HS256 never warns.
DEFAULT_AUTH_SECRET = "pushlab-development-secret-do-not-use-in-production-0123456789abcd"
DEFAULT_AUTH_TOKEN_TTL_S = 300.0
DEFAULT_AUTH_FIRST_MESSAGE_S = 5.0
DEFAULT_WS_RATE_PER_S = 50.0
DEFAULT_WS_RATE_BURST = 100
DEFAULT_SHUTDOWN_TIMEOUT_S = 5.0
DEFAULT_REDIS_PREFIX = "pushlab"
SSE_IMPLS = ("sse-starlette", "pushlab")
# uvicorn's three, and pushlab-sansio: uvicorn's websockets-sansio with lean per-socket state
# (servers/fastpath/ws_protocol.py).
WS_IMPLS = ("websockets-sansio", "pushlab-sansio", "wsproto", "websockets")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a server, client or run can be told. Field docs are in docs/protocol.md."""

    host: str = "127.0.0.1"
    port: int = 8000
    broker: str = "memory://"
    redis_prefix: str = DEFAULT_REDIS_PREFIX
    history: int = DEFAULT_HISTORY
    max_topics: int = 10_000
    poll_batch: int = 1_000
    long_poll_timeout_s: float = DEFAULT_LONG_POLL_TIMEOUT_S
    long_poll_max_timeout_s: float = DEFAULT_LONG_POLL_MAX_TIMEOUT_S
    sse_retry_ms: int = DEFAULT_SSE_RETRY_MS
    keepalive_s: float = DEFAULT_KEEPALIVE_S
    subscriber_buffer: int = 1_000
    max_publish_bytes: int = 64 * 1024
    ws_max_message_bytes: int = 64 * 1024
    ws_max_bad_messages: int = 10
    send_timeout_s: float = 10.0
    ticker_topic: str = "ticks"
    ticker_rate: float = 10.0
    ticker_size: int = 64
    chat_max_text: int = 4096
    chat_max_rooms: int = 100
    # Admin routes (/admin/*): off unless enabled; with auth on they need the admin claim.
    admin: bool = False
    board_max_boards: int = 1_000
    board_max_strokes: int = 5_000
    board_max_points: int = 2_000
    board_history: int = 10_000
    board_max_message_bytes: int = 64 * 1024
    board_rate: float = 50.0
    board_burst: int = 100
    board_buffer: int = 1_000
    log_level: str = "info"
    # Heartbeat: app-level {"type":"ping"} every interval; no pong within timeout closes 1011.
    ws_ping_interval_s: float = DEFAULT_WS_PING_INTERVAL_S
    ws_ping_timeout_s: float = DEFAULT_WS_PING_TIMEOUT_S
    # Authentication (JWT, HS256); off by default because the bench runs without it.
    auth: bool = False
    auth_secret: str = DEFAULT_AUTH_SECRET
    auth_token_ttl_s: float = DEFAULT_AUTH_TOKEN_TTL_S
    auth_first_message_s: float = DEFAULT_AUTH_FIRST_MESSAGE_S
    # Comma-separated allowed Origin values ("" allows every origin).
    origins: str = ""
    # Live streaming connections (ws, sse, long-poll) per client IP; 0 = no cap.
    max_conns_per_ip: int = 0
    # Comma-separated proxy IPs/CIDRs whose X-Forwarded-For names the client ("" trusts nobody).
    trusted_proxies: str = ""
    ws_rate_per_s: float = DEFAULT_WS_RATE_PER_S
    ws_rate_burst: int = DEFAULT_WS_RATE_BURST
    ws_compression: bool = False
    # uvicorn's WebSocket implementation (WS_IMPLS). pushlab-sansio, the default, is uvicorn's
    # websockets-sansio protocol with lean per-socket state and RFC 6455 answers where uvicorn's
    # differ (servers/fastpath/ws_protocol.py): sansio for server CPU per event, lean for memory
    # per idle socket (docs/performance.md), 0 FAILED in Autobahn like wsproto
    # (docs/conformance.md).
    ws_impl: str = "pushlab-sansio"
    # Feed events written by the publisher straight to uvicorn's transport while a socket is
    # idle and clean (servers/fastpath/ws_direct.py); off: every event goes through the writer task.
    ws_direct: bool = True
    # SSE and /stream: the publisher writes each live event straight to a parked stream's socket
    # when uvicorn's HTTP/1.1 cycle allows it (servers/fastpath/sse_direct.py); off = every event
    # through the stream task.
    sse_direct: bool = True
    # Who runs an SSE stream: sse-starlette's EventSourceResponse, or pushlab's one-task response
    # (servers/sse/stream.py). docs/performance.md compares them.
    sse_impl: str = "sse-starlette"
    shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S
    # Memory bounds (docs/protocol.md "Memory bounds"): history bytes per topic and over all
    # topics (besides the ``history`` count), and topics held open empty by subscribers.
    history_bytes: int = DEFAULT_HISTORY_BYTES
    history_total_bytes: int = DEFAULT_HISTORY_TOTAL_BYTES
    max_subscriber_topics: int = DEFAULT_MAX_SUBSCRIBER_TOPICS
    # File the in-memory history is saved to at shutdown and restored from at start ("" = off).
    snapshot_path: str = ""
    log_json: bool = True
    # Limits and timeouts of the HTTP layer (servers/fastpath/http_protocol.py; docs/protocol.md
    # "Limits and timeouts"). The head deadline: Node answers 408 after 60 s, nginx after 60 s; a
    # request head is one packet from any client of this lab, so 10 s leaves room for several TCP
    # retransmissions (initial RTO 1 s, doubling) and holds a stalled socket 6x less long.
    http_header_timeout_s: float = 10.0
    # Node's --max-http-header-size default (16 KiB), answered 431 like Node.
    http_max_head_bytes: int = 16 * 1024
    # Below websockets' 128 (the upgrade path), so an upgrade is refused by us, with an answer.
    http_max_headers: int = 100
    # Connections still sending their first head (or a later one); beyond it the oldest goes.
    http_max_pending: int = 1024
    # uvicorn's timeout_keep_alive: an idle keep-alive connection between requests.
    http_idle_timeout_s: float = 5.0
    # Slow consumers: a send blocked this long drops the connection and aborts its socket after
    # a goodbye bounded by send_close_timeout_s (servers/websocket/session.py,
    # servers/sse/stream.py).
    send_close_timeout_s: float = 1.0
    # WebTransport over HTTP/3 (servers/webtransport/): its UDP port; 0 any free one, -1 off.
    webtransport_port: int = -1
    # TLS: PEM certificate chain and key ("" = plaintext). Both or neither.
    tls_cert: str = ""
    tls_key: str = ""
    # Serve under hypercorn instead of uvicorn: HTTP/2 (over TLS: ALPN h2, with http/1.1 as the
    # fallback; without: h2c by prior knowledge) and RFC 8441 WebSockets (servers/http2.py).
    http2: bool = False
    # With http2 and TLS: HTTP/3 too, on UDP at the TCP port's number (hypercorn + aioquic; its
    # responses announce it in Alt-Svc). servers/http2.py.
    http3: bool = False

    def __post_init__(self) -> None:
        for name in (
            "history",
            "poll_batch",
            "subscriber_buffer",
            "max_topics",
            "board_max_boards",
            "board_max_strokes",
            "board_max_points",
            "board_history",
            "board_burst",
            "board_buffer",
            "history_bytes",
            "max_subscriber_topics",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.history_total_bytes < self.history_bytes:
            raise ValueError("history_total_bytes must be >= history_bytes")
        if self.board_rate <= 0:
            raise ValueError("board_rate must be > 0")
        if self.ticker_rate < 0 or self.ticker_size < 0:
            raise ValueError("ticker_rate and ticker_size must be >= 0")
        if self.ws_impl not in WS_IMPLS:
            raise ValueError(f"ws_impl must be one of {', '.join(WS_IMPLS)}")
        if self.sse_impl not in SSE_IMPLS:
            raise ValueError(f"sse_impl must be one of {', '.join(SSE_IMPLS)}")
        if self.ws_ping_interval_s < 0 or self.ws_ping_timeout_s <= 0:
            raise ValueError("need ws_ping_interval_s >= 0 (0: off) and ws_ping_timeout_s > 0")
        if self.ws_rate_per_s <= 0 or self.ws_rate_burst < 1 or self.max_conns_per_ip < 0:
            raise ValueError("need ws_rate_per_s > 0, ws_rate_burst >= 1, max_conns_per_ip >= 0")
        if len(self.auth_secret.encode()) < 32:
            raise ValueError("auth_secret must be at least 32 bytes (RFC 7518 3.2)")
        if self.shutdown_timeout_s <= 0 or self.auth_token_ttl_s <= 0:
            raise ValueError("need shutdown_timeout_s > 0 and auth_token_ttl_s > 0")
        if min(self.http_header_timeout_s, self.http_idle_timeout_s) <= 0:
            raise ValueError("need http_header_timeout_s > 0 and http_idle_timeout_s > 0")
        if min(self.http_max_head_bytes, self.http_max_headers, self.http_max_pending) < 1:
            raise ValueError("need http_max_head_bytes, http_max_headers, http_max_pending >= 1")
        if not -1 <= self.webtransport_port <= 65535:
            raise ValueError("webtransport_port must be -1 (off), 0 (any) or a port")
        if self.send_close_timeout_s <= 0:
            raise ValueError("need send_close_timeout_s > 0")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together (both or neither)")
        if self.http3 and not (self.http2 and self.tls):
            raise ValueError("http3 needs http2 and TLS (tls_cert, tls_key): QUIC is always TLS")
        if not 0 < self.long_poll_timeout_s <= self.long_poll_max_timeout_s:
            raise ValueError("need 0 < long_poll_timeout_s <= long_poll_max_timeout_s")
        self.trusted_proxy_list  # noqa: B018 (raises on an entry that is not an IP or CIDR)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``PUSHLAB_*`` variables, then explicit overrides (CLI flags)."""
        env = os.environ if environ is None else environ
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in env.items():
            if not key.startswith(ENV_PREFIX) or key.startswith(TEST_PREFIX):
                continue
            name = key[len(ENV_PREFIX) :].lower()
            if name not in known:
                raise ValueError(f"unknown setting {key}")
            values[name] = _convert(known[name].type, raw, key)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for metadata files; the JWT secret is never written out."""
        values = dataclasses.asdict(self)
        values["auth_secret"] = "<redacted>"
        return values

    @property
    def tls(self) -> bool:
        """Whether the server speaks TLS (``https://``, ``wss://``)."""
        return bool(self.tls_cert)

    @property
    def origin_allowlist(self) -> frozenset[str]:
        """The allowed ``Origin`` values; empty means every origin is allowed."""
        return frozenset(o.strip().rstrip("/") for o in self.origins.split(",") if o.strip())

    @property
    def trusted_proxy_list(self) -> list[str]:
        """``trusted_proxies`` as networks (``10.0.0.1/8`` -> ``10.0.0.0/8``); empty: trust nobody.

        Normalised because uvicorn's ProxyHeadersMiddleware silently treats a CIDR with host bits
        set as a literal name that never matches.
        """
        networks = []
        for entry in self.trusted_proxies.split(","):
            if entry.strip():
                try:
                    networks.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
                except ValueError:
                    raise ValueError(f"trusted_proxies: {entry!r} is not an IP or CIDR") from None
        return networks


def _convert(kind: Any, raw: str, key: str) -> Any:
    kind = kind if isinstance(kind, str) else kind.__name__
    try:
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not a valid {kind}") from None
    return raw
