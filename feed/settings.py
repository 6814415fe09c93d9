"""Frozen settings built from ``PUSHLAB_*`` environment variables, defaults and overrides.

Config flows one way: :func:`Settings.from_env` is called once at the edge (CLI, test fixture),
the frozen object is passed explicitly to the app, clients and runs, and ``as_dict()`` is saved in
every result's metadata. An unknown ``PUSHLAB_*`` variable is an error, so a typo cannot silently
leave a default in place.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

ENV_PREFIX = "PUSHLAB_"

DEFAULT_HISTORY = 10_000
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
# (servers/ws_protocol.py).
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
    admin: bool = True
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
    ws_rate_per_s: float = DEFAULT_WS_RATE_PER_S
    ws_rate_burst: int = DEFAULT_WS_RATE_BURST
    ws_compression: bool = False
    # uvicorn's WebSocket implementation (WS_IMPLS). pushlab-sansio, the default, is uvicorn's
    # websockets-sansio protocol with lean per-socket state and RFC 6455 answers where uvicorn's
    # differ (servers/ws_protocol.py): sansio for server CPU per event, lean for memory per idle
    # socket (docs/performance.md), 0 FAILED in Autobahn like wsproto (docs/conformance.md).
    ws_impl: str = "pushlab-sansio"
    # Feed events written by the publisher straight to uvicorn's transport while a socket is
    # idle and clean (servers/ws_direct.py); off: every event goes through the writer task.
    ws_direct: bool = True
    # SSE: the publisher writes each live event straight to a parked stream's socket when uvicorn's
    # HTTP/1.1 cycle allows it (servers/sse_direct.py); off = every event through the stream task.
    sse_direct: bool = True
    # Who runs an SSE stream: sse-starlette's EventSourceResponse, or pushlab's one-task response
    # (servers/sse_stream.py). docs/performance.md compares them.
    sse_impl: str = "sse-starlette"
    shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S
    # File the in-memory history is saved to at shutdown and restored from at start ("" = off).
    snapshot_path: str = ""
    log_json: bool = True

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
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
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
        if not 0 < self.long_poll_timeout_s <= self.long_poll_max_timeout_s:
            raise ValueError("need 0 < long_poll_timeout_s <= long_poll_max_timeout_s")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``PUSHLAB_*`` variables, then explicit overrides (CLI flags)."""
        env = os.environ if environ is None else environ
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in env.items():
            if not key.startswith(ENV_PREFIX):
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
    def origin_allowlist(self) -> frozenset[str]:
        """The allowed ``Origin`` values; empty means every origin is allowed."""
        return frozenset(o.strip().rstrip("/") for o in self.origins.split(",") if o.strip())


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
