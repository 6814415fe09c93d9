"""The access policy: every route has an entry, and each kind of entry is enforced on a real server.

The probes are the ones issue 16 made against ``pushlab serve --auth --origins ...``: a token-less
publish, admin calls and chat logins as somebody else, and cross-site requests and upgrades.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import orjson
import pytest
from fastapi.routing import iter_route_contexts
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from feed.settings import Settings
from servers import policy
from servers.app import create_app
from servers.auth import issue
from servers.launch import ServerThread

pytestmark = pytest.mark.abuse

EVIL = "https://evil.example"
ALLOWED = "https://lab.example"

# One request per USER route, as (method, path, body); "WS" for an upgrade.
USER_HTTP = [
    ("POST", "/publish?topic=t", b"1"),
    ("GET", "/poll?topic=t", None),
    ("GET", "/long-poll?topic=t&timeout=0.05", None),
    ("GET", "/sse?topic=t", None),
    ("POST", "/echo", b"hello"),
    ("GET", "/whiteboard/sse?board=b&user=bob", None),
    ("POST", "/whiteboard/send?board=b&user=bob", b'{"type": "cursor", "x": 1, "y": 1}'),
]
USER_WS = ["/echo", "/chat?user=bob", "/whiteboard/ws?board=b&user=bob"]
ADMIN_HTTP = [
    ("POST", "/admin/kick", None),
    ("POST", "/admin/ticker?rate=10", None),
    ("GET", "/admin/ticker", None),
]


def ws_url(server: ServerThread, path: str) -> str:
    return server.url.replace("http", "ws", 1) + path


async def upgrade_status(url: str, **kwargs: Any) -> int:
    """101 when the upgrade is accepted, else the HTTP status that refused it."""
    try:
        async with connect(url, open_timeout=10, **kwargs):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def call(server: ServerThread, method: str, path: str, body: bytes | None, **headers: str):
    async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as http:
        return await http.request(method, path, content=body, headers=headers)


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r.getMessage() for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not bad, bad


@pytest.fixture
def auth_server(serve, settings) -> ServerThread:
    return serve(settings.replace(auth=True, admin=True, ticker_rate=1))


@pytest.fixture
def origin_server(serve, settings) -> ServerThread:
    return serve(settings.replace(origins=ALLOWED, admin=True))


def test_every_route_has_a_policy_entry(settings):
    """The whole route table (routed, bare and mounted, HTTP and WS) is named in POLICY."""
    app = create_app(settings)
    keys = [k for ctx in iter_route_contexts(app.routes) for k in policy.route_keys(ctx)]
    assert ("WS", "/chat") in keys and ("GET", "/sse") in keys and ("GET", "/web") in keys
    assert [k for k in keys if k not in policy.POLICY] == []


def test_a_route_without_an_entry_cannot_be_added(settings):
    """An unprotected route fails the check that create_app runs: it is never served."""
    app = create_app(settings)

    @app.get("/new-route")
    async def new_route() -> dict[str, str]:
        return {}

    with pytest.raises(LookupError, match="/new-route"):
        policy.check_routes(app.routes)


@pytest.mark.parametrize(("method", "path", "body"), USER_HTTP)
async def test_user_routes_need_a_token(auth_server, method, path, body, caplog):
    """With auth on, every user route answers 401 without a token and serves a valid one."""
    caplog.set_level(logging.INFO)
    r = await call(auth_server, method, path, body)
    assert (r.status_code, r.json()["error"]) == (401, "unauthorized"), path
    assert r.headers["www-authenticate"] == "Bearer"
    token, _ = issue(auth_server.settings, "bob")
    if path.startswith("/sse") or path.startswith("/whiteboard/sse"):
        async with (
            httpx.AsyncClient(base_url=auth_server.url, trust_env=False, timeout=10) as http,
            http.stream("GET", path, headers={"Authorization": f"Bearer {token}"}) as s,
        ):
            assert s.status_code == 200
    else:
        r = await call(auth_server, method, path, body, Authorization=f"Bearer {token}")
        assert r.status_code in (200, 204), (path, r.text)
    no_tracebacks(caplog)


@pytest.mark.parametrize("path", USER_WS)
async def test_user_sockets_need_a_token(auth_server, path, caplog):
    """Echo, chat and whiteboard sockets are refused 401 before the upgrade without a token."""
    caplog.set_level(logging.INFO)
    assert await upgrade_status(ws_url(auth_server, path)) == 401
    token, _ = issue(auth_server.settings, "bob")
    auth = {"Authorization": f"Bearer {token}"}
    assert await upgrade_status(ws_url(auth_server, path), additional_headers=auth) == 101
    no_tracebacks(caplog)


async def test_feed_socket_refuses_a_bad_token_before_the_upgrade(auth_server):
    """WS /ws keeps first-message auth for a token-less upgrade, but a bad token is a 401."""
    url = ws_url(auth_server, "/ws?topic=t&token=not.a.jwt")
    assert await upgrade_status(url) == 401


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_HTTP)
async def test_admin_routes_need_the_admin_claim(auth_server, method, path, body):
    """No token: 401; a user's token: 403 admin_required; an admin token: served."""
    r = await call(auth_server, method, path, body)
    assert r.status_code == 401
    user, _ = issue(auth_server.settings, "bob")
    r = await call(auth_server, method, path, body, Authorization=f"Bearer {user}")
    assert (r.status_code, r.json()["error"]) == (403, "admin_required")
    admin, _ = issue(auth_server.settings, "root", admin=True)
    r = await call(auth_server, method, path, body, Authorization=f"Bearer {admin}")
    assert r.status_code == 200, r.text


async def test_development_login_never_signs_the_admin_claim(auth_server):
    """A token from POST /token is a user's, whatever the body asks for."""
    async with httpx.AsyncClient(base_url=auth_server.url, trust_env=False) as http:
        r = await http.post("/token", json={"user": "root", "admin": True})
        token = r.json()["access_token"]
        r = await http.post("/admin/kick", headers={"Authorization": f"Bearer {token}"})
    assert (r.status_code, r.json()["error"]) == (403, "admin_required")


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_HTTP)
async def test_admin_routes_are_off_by_default(live, method, path, body):
    """Default settings: admin routes answer 403 admin_disabled (auth off or not)."""
    assert not Settings().admin
    r = await call(live, method, path, body)
    assert (r.status_code, r.json()["error"]) == (403, "admin_disabled")


@pytest.mark.parametrize("path", ["/", "/web/sse.js", "/healthz", "/metrics", "/docs"])
async def test_public_routes_need_no_token(auth_server, path):
    """Pages, health, metrics and the API docs answer without a token even with auth on."""
    r = await call(auth_server, "GET", path, None)
    assert r.status_code == 200, path


async def test_chat_user_comes_from_the_token(auth_server):
    """With auth on, chat welcomes the token's user; ?user= naming someone else is a 403."""
    token, _ = issue(auth_server.settings, "alice")
    auth = {"Authorization": f"Bearer {token}"}
    assert await upgrade_status(ws_url(auth_server, "/chat?user=bob"), additional_headers=auth) == (
        403
    )
    for path in ("/chat", "/chat?user=alice"):
        async with connect(ws_url(auth_server, path), additional_headers=auth) as ws:
            welcome = orjson.loads(await ws.recv())
        assert (welcome["type"], welcome["user"]) == ("welcome", "alice")


async def test_whiteboard_user_comes_from_the_token(auth_server):
    """The whiteboard socket and its POST refuse a ?user= that is not the token's subject."""
    token, _ = issue(auth_server.settings, "alice")
    auth = {"Authorization": f"Bearer {token}"}
    url = ws_url(auth_server, "/whiteboard/ws?board=b&user=bob")
    assert await upgrade_status(url, additional_headers=auth) == 403
    body = b'{"type": "cursor", "x": 1, "y": 1}'
    r = await call(auth_server, "POST", "/whiteboard/send?board=b&user=bob", body, **auth)
    assert (r.status_code, r.json()["error"]) == (403, "user_mismatch")
    r = await call(auth_server, "POST", "/whiteboard/send?board=b", body, **auth)
    assert r.status_code == 200


async def test_browser_token_subprotocol_is_echoed_by_the_demo_sockets(auth_server):
    """A browser's ["pushlab.v1", "bearer.<token>"] works on chat as on /ws."""
    token, _ = issue(auth_server.settings, "alice")
    protocols = ["pushlab.v1", f"bearer.{token}"]
    async with connect(ws_url(auth_server, "/chat"), subprotocols=protocols) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == "pushlab.v1"
        assert orjson.loads(await ws.recv())["user"] == "alice"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/publish?topic=t", b"1"),
        ("POST", "/echo", b"x"),
        ("POST", "/token", b'{"user": "bob"}'),
        ("POST", "/whiteboard/send?board=b&user=bob", b'{"type": "undo"}'),
        ("POST", "/admin/kick", None),
    ],
)
async def test_cross_site_posts_are_refused(origin_server, method, path, body, caplog):
    """A state-changing POST from a foreign Origin is a 403, logged at INFO with its reason."""
    caplog.set_level(logging.INFO, logger="pushlab.conn")
    r = await call(origin_server, method, path, body, Origin=EVIL)
    assert (r.status_code, r.json()["error"]) == (403, "origin_not_allowed")
    reject = next(r for r in caplog.records if getattr(r, "pushlab", {}).get("event") == "reject")
    assert reject.levelno == logging.INFO and reject.pushlab["error"] == "origin_not_allowed"
    r = await call(origin_server, method, path, body, Origin=ALLOWED)
    assert r.status_code != 403


@pytest.mark.parametrize("path", ["/chat?user=bob", "/whiteboard/ws?board=b&user=bob", "/echo"])
async def test_cross_site_upgrades_are_refused(origin_server, path):
    """Cross-site WebSocket hijacking: every upgrade from a foreign Origin is refused 403."""
    url = ws_url(origin_server, path)
    assert await upgrade_status(url, origin=EVIL) == 403  # type: ignore[arg-type]
    assert await upgrade_status(url, origin=ALLOWED) == 101  # type: ignore[arg-type]


async def test_refusals_are_info_not_warnings(serve, settings, caplog):
    """A refused request is the server doing its job: logged at INFO with status and reason."""
    caplog.set_level(logging.INFO, logger="pushlab.conn")
    server = serve(settings.replace(auth=True))
    r = await call(server, "GET", "/poll?topic=t", None)
    assert r.status_code == 401
    rejects = [r for r in caplog.records if getattr(r, "pushlab", {}).get("event") == "reject"]
    assert rejects and all(r.levelno == logging.INFO for r in rejects)
    assert rejects[0].pushlab["status"] == 401 and rejects[0].pushlab["error"] == "unauthorized"


async def test_per_ip_cap_refusal_is_info_with_its_reason(serve, settings, caplog):
    """The per-IP cap's 429 is a refusal too: INFO, with error and detail."""
    caplog.set_level(logging.INFO, logger="pushlab.conn")
    server = serve(settings.replace(max_conns_per_ip=1))
    async with connect(ws_url(server, "/ws?topic=t")) as ws:
        await ws.recv()
        assert await upgrade_status(ws_url(server, "/ws?topic=t")) == 429
    rejects = [r for r in caplog.records if getattr(r, "pushlab", {}).get("status") == 429]
    assert len(rejects) == 1, rejects  # one refusal, one record (not the cap's and deny's)
    reject = rejects[0]
    assert reject.levelno == logging.INFO
    assert (
        reject.pushlab["error"] == "too_many_connections"
        and "per client IP" in (reject.pushlab["detail"])
    )
