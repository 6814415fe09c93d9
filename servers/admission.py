"""What a stream checks once the policy let it through: draining, and the caller's identity.

Origin and token were checked by :mod:`servers.policy` before dispatch. HTTP transports call
:func:`admit` before doing any work, so a refusal is a plain HTTP answer (503 draining; the
per-IP cap, 429, is checked by each stream). The WebSocket endpoint runs the same check before
accepting the upgrade and answers with ``send_denial_response``.
"""

from __future__ import annotations

import logging

from starlette.requests import HTTPConnection

from feed.exceptions import CapacityError
from servers.auth import Principal
from servers.logs import log_conn
from servers.policy import principal_of
from servers.state import AppState, state


def check_open(st: AppState) -> None:
    """Refuse new streams once the server is draining."""
    if st.shutdown.is_set():
        raise CapacityError("server is shutting down")


def admit(conn: HTTPConnection, transport: str) -> Principal | None:
    """The draining check for an HTTP transport; the caller the policy verified (None: auth off).

    A refusal is logged at INFO: it is the server doing its job, not a server problem.
    """
    st = state(conn)
    try:
        check_open(st)
    except CapacityError as exc:
        st.metrics.rejected.labels(transport, "503").inc()
        client = conn.client
        log_conn(
            "reject",
            logging.INFO,
            transport=transport,
            remote=f"{client.host}:{client.port}" if client else "unknown",
            status=503,
            error="unavailable",
            detail=str(exc),
        )
        raise
    return principal_of(conn)
