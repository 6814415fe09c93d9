"""Who may open a stream: Origin allowlist (CSWSH), authentication and the per-IP cap.

HTTP transports call :func:`admit` before doing any work, so a refusal is a plain HTTP answer
(403 origin, 401 token, 429 cap, 503 draining). The WebSocket endpoint runs the same checks
before accepting the upgrade and answers with ``send_denial_response``.
"""

from __future__ import annotations

import logging

from starlette.requests import HTTPConnection

from feed.exceptions import CapacityError, OriginNotAllowed, Refused
from servers.auth import Principal, authenticate
from servers.deps import AppState, state
from servers.logs import log_conn


def check_origin(conn: HTTPConnection, st: AppState) -> None:
    """Refuse an ``Origin`` outside the allowlist; no ``Origin`` header (non-browser) passes.

    Browsers always send ``Origin`` on WebSocket upgrades and cross-origin fetch/EventSource,
    which is what cross-site WebSocket hijacking abuses: cookies ride along, CORS does not apply.
    """
    allowed = st.origins
    if not allowed:
        return
    origin = conn.headers.get("origin")
    if origin is not None and origin.rstrip("/") not in allowed:
        raise OriginNotAllowed(f"origin {origin[:100]!r} is not allowed")


def check_open(st: AppState) -> None:
    """Refuse new streams once the server is draining."""
    if st.shutdown.is_set():
        raise CapacityError("server is shutting down")


def admit(conn: HTTPConnection, transport: str) -> Principal | None:
    """Origin, draining and token checks for an HTTP transport; raises the refusal."""
    st = state(conn)
    try:
        check_origin(conn, st)
        check_open(st)
        return authenticate(conn)
    except (Refused, CapacityError) as exc:
        status = getattr(exc, "status", 503)
        st.metrics.rejected.labels(transport, str(status)).inc()
        client = conn.client
        log_conn(
            "reject",
            logging.WARNING,
            transport=transport,
            remote=f"{client.host}:{client.port}" if client else "unknown",
            status=status,
            error=getattr(exc, "code", "unavailable"),
            detail=str(exc),
        )
        raise
