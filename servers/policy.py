"""Who may call what: the one access policy of every HTTP and WebSocket route, and its enforcement.

:data:`POLICY` maps each route (``(method, path)``; ``"WS"`` for a WebSocket) to a :class:`Rule`:

- ``PUBLIC``: anyone, with or without auth (pages, health, metrics, the development login);
- ``USER``: with ``PUSHLAB_AUTH=1``, a valid token; its ``sub`` is the caller's identity (chat and
  whiteboard take the user from it, never from ``?user=``);
- ``ADMIN``: off unless ``PUSHLAB_ADMIN=1`` (403 ``admin_disabled``); with auth on, a token with
  the ``admin`` claim (403 ``admin_required`` without it).

``origin`` marks the routes a browser can reach cross-site with its credentials (every WebSocket
upgrade, every state-changing POST, the streams): their ``Origin`` must be in ``PUSHLAB_ORIGINS``.

:meth:`servers.fastpath.bare.PushlabApp.__call__` runs :func:`enforce` before any dispatch — routed,
bare (``/sse``, ``/poll``...) and direct (``/ws``) alike — so a refusal is a plain HTTP answer (a
WebSocket upgrade is refused with ``send_denial_response``, never a 101) and endpoints read the
verified caller with :func:`principal_of`. :func:`check_routes` refuses to build an app with a
route the table does not name: a new route cannot be added unprotected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from feed.exceptions import (
    AdminDisabled,
    AdminRequired,
    OriginNotAllowed,
    Refused,
    Unauthorized,
    UserMismatch,
)
from servers.auth import Principal, header_or_query_token, subprotocol_token, verify
from servers.fastpath.routing import RouteContext, get_route_path, iter_route_contexts
from servers.logs import log_conn
from servers.state import JSON, AppState, error_body

WS = "WS"
PRINCIPAL = "pushlab.principal"


class Access(StrEnum):
    """Who may call a route (see the module docstring)."""

    PUBLIC = "public"
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Rule:
    """One route's policy; ``label`` names it in metrics and logs."""

    access: Access
    origin: bool
    label: str
    # WS /ws only: an upgrade without a token is let through to first-message authentication.
    first_message: bool = False


def _user(label: str) -> Rule:
    return Rule(Access.USER, origin=True, label=label)


def _public(label: str, *, origin: bool = False) -> Rule:
    return Rule(Access.PUBLIC, origin=origin, label=label)


def _admin() -> Rule:
    return Rule(Access.ADMIN, origin=True, label="admin")


POLICY: dict[tuple[str, str], Rule] = {
    # The feed.
    ("GET", "/poll"): _user("poll"),
    ("GET", "/long-poll"): _user("long-poll"),
    ("GET", "/sse"): _user("sse"),
    (WS, "/ws"): Rule(Access.USER, origin=True, label="ws", first_message=True),
    ("GET", "/stream"): _user("stream"),
    ("POST", "/publish"): _user("publish"),
    # WebTransport's CONNECT, checked by servers/webtransport/server.py (not an ASGI route).
    ("CONNECT", "/wt"): _user("wt"),
    # Demos.
    (WS, "/echo"): _user("echo"),
    ("POST", "/echo"): _user("echo"),
    (WS, "/chat"): _user("chat"),
    (WS, "/whiteboard/ws"): _user("whiteboard"),
    ("GET", "/whiteboard/sse"): _user("whiteboard"),
    ("POST", "/whiteboard/send"): _user("whiteboard"),
    # Admin: off by default.
    ("GET", "/admin/ticker"): _admin(),
    ("POST", "/admin/ticker"): _admin(),
    ("POST", "/admin/kick"): _admin(),
    # Public. /token signs any user without a password: development logins only (docs/protocol.md).
    ("POST", "/token"): _public("token", origin=True),
    ("GET", "/healthz"): _public("healthz"),
    ("GET", "/webtransport"): _public("webtransport"),
    ("GET", "/metrics"): _public("metrics"),
    ("GET", "/"): _public("pages"),
    ("GET", "/whiteboard"): _public("pages"),
    ("GET", "/web"): _public("pages"),  # the static mount: every path under /web/
    ("GET", "/openapi.json"): _public("docs"),
    ("GET", "/docs"): _public("docs"),
    ("GET", "/docs/oauth2-redirect"): _public("docs"),
    ("GET", "/redoc"): _public("docs"),
}
MOUNTS = ("/web",)


def route_keys(ctx: RouteContext) -> list[tuple[str, str]]:
    """The policy keys a route answers to (HEAD is served as GET)."""
    route, path = ctx.route, ctx.path or ""
    if isinstance(route, WebSocketRoute):
        return [(WS, path)]
    if isinstance(route, Route):
        # A bare ASGI route takes every method (it answers 405 itself): rule_for gives any
        # method on it the GET rule.
        return [(m, path) for m in sorted(ctx.methods or {"GET"}) if m != "HEAD"]
    if isinstance(route, Mount):
        return [("GET", path)]
    # Host routes or anything new: unknown to the table, so never served unchecked.
    return [("?", repr(route))]


def check_routes(routes: list[BaseRoute]) -> None:
    """Raise ``LookupError`` naming every route without a policy entry (the bare routes are
    routes too: :func:`servers.routes.install`)."""
    keys = [k for ctx in iter_route_contexts(routes) for k in route_keys(ctx)]
    missing = sorted({k for k in keys if k not in POLICY})
    if missing:
        raise LookupError(f"routes without an entry in servers.policy.POLICY: {missing}")


def rule_for(scope: Scope) -> Rule | None:
    """The rule of the route this request goes to; None when no route matches (404/405)."""
    path = get_route_path(scope)
    if scope["type"] == "websocket":
        return POLICY.get((WS, path))
    # Another method on a GET route gets the GET rule (then 405 from the route or the router).
    rule = POLICY.get((scope["method"], path)) or POLICY.get(("GET", path))
    if rule is None:
        for mount in MOUNTS:
            if path.startswith(mount + "/"):
                return POLICY[("GET", mount)]
    return rule


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


def request_token(conn: HTTPConnection) -> str | None:
    """The token a request carries: ``Authorization``, ``?token=``, or a ``bearer.`` subprotocol."""
    if conn.scope["type"] == "websocket":
        found = subprotocol_token(list(conn.scope.get("subprotocols", [])))
        if found is not None:
            return found
    return header_or_query_token(conn)


def check(conn: HTTPConnection, st: AppState, rule: Rule) -> Principal | None:
    """Apply ``rule`` to ``conn``: the verified principal (None with auth off); raises a refusal."""
    settings = st.settings
    if rule.origin:
        check_origin(conn, st)
    if rule.access is Access.ADMIN and not settings.admin:
        raise AdminDisabled("admin routes are off (PUSHLAB_ADMIN=1 turns them on)")
    if not settings.auth or rule.access is Access.PUBLIC:
        return None
    token = request_token(conn)
    if token is None:
        if rule.first_message:
            return None
        raise Unauthorized("a token is required (Authorization: Bearer, or ?token=)")
    principal = verify(settings, token)
    if rule.access is Access.ADMIN and not principal.admin:
        raise AdminRequired("this route needs a token with the admin claim")
    return principal


async def enforce(st: AppState, scope: Scope, receive: Receive, send: Send) -> bool:
    """Check the request against its rule; answer a refusal and return False, else True."""
    rule = rule_for(scope)
    if rule is None:
        return True  # no route: the router answers 404/405 and runs nothing
    settings = st.settings
    if not (rule.origin and st.origins) and not settings.auth and rule.access is not Access.ADMIN:
        scope[PRINCIPAL] = None  # the common lab case: nothing to check
        return True
    conn = HTTPConnection(scope, receive)
    try:
        scope[PRINCIPAL] = check(conn, st, rule)
    except Refused as exc:
        await refuse(st, conn, rule.label, exc, receive, send)
        return False
    return True


async def refuse(
    st: AppState, conn: HTTPConnection, label: str, exc: Refused, receive: Receive, send: Send
) -> None:
    """Count, log at INFO (a refusal is the policy working, not a server problem) and answer."""
    st.metrics.rejected.labels(label, str(exc.status)).inc()
    client = conn.client
    log_conn(
        "reject",
        logging.INFO,
        transport=label,
        remote=f"{client.host}:{client.port}" if client else "unknown",
        status=exc.status,
        error=exc.code,
        detail=str(exc),
    )
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    response = JSON(error_body(exc.code, str(exc)), status_code=exc.status, headers=headers)
    if conn.scope["type"] == "websocket":
        await WebSocket(conn.scope, receive, send).send_denial_response(response)
    else:
        await response(conn.scope, receive, send)


def principal_of(conn: HTTPConnection) -> Principal | None:
    """The caller :func:`enforce` verified (None with auth off, or before first-message auth)."""
    found: Principal | None = conn.scope.get(PRINCIPAL)
    return found


def identity(conn: HTTPConnection, asked: str | None) -> str | None:
    """The token's user when auth is on (a ``?user=`` naming anyone else is refused), else None."""
    principal = principal_of(conn)
    if principal is None:
        if conn.app.state.pushlab.settings.auth:
            raise Unauthorized("a token is required")  # never reached past enforce(): fail closed
        return None
    if asked is not None and asked != principal.user:
        raise UserMismatch(f"user {asked[:64]!r} is not the token's subject")
    return principal.user
