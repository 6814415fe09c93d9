"""JWT authentication for every transport, and ``POST /token`` for development logins.

Tokens are HS256 JWTs signed with ``auth_secret``, carrying ``sub`` (the user) and ``exp``, and
``admin: true`` for tokens that may call admin routes (:mod:`servers.policy`).
Verification pins the algorithm list to HS256, so ``alg=none`` and tokens signed with any other
algorithm (HS512, RS256...) are refused like a bad signature or an expired token. Where a token
travels, per transport (docs/protocol.md, "Authentication"):

- poll, long-poll, SSE via fetch: ``Authorization: Bearer <token>``;
- EventSource (cannot send headers): ``?token=<token>``, redacted from every log;
- WebSocket: ``Sec-WebSocket-Protocol: pushlab.v1, bearer.<token>`` (the server echoes
  ``pushlab.v1``, never the token), the ``Authorization`` header, ``?token=``, or a first
  message ``{"type": "auth", "token": ...}`` within ``auth_first_message_s``.

``POST /token`` takes ``{"user": name}`` and signs a token with no password at all: it exists so
the lab and its tests can log in. Do not expose it in front of anything real. It never signs the
admin claim: admin tokens come from whoever holds the secret (``pushlab token --admin``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ValidationError
from starlette.requests import HTTPConnection

from feed.exceptions import Unauthorized
from feed.names import is_name, rule
from feed.settings import Settings
from feed.wire.contract import BEARER_PREFIX
from servers.state import JSON, read_limited, state

ALGORITHM = "HS256"
# A {"user": name} body is ~80 bytes; anything much larger is refused before it is read.
MAX_TOKEN_REQUEST_BYTES = 1024

router = APIRouter()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token names, until when (``exp``, epoch seconds), and if it is an admin."""

    user: str
    exp: float
    admin: bool = False

    def remaining(self) -> float:
        """Seconds until the token expires (negative once expired)."""
        return self.exp - time.time()


def issue(
    settings: Settings, user: str, ttl_s: float | None = None, *, admin: bool = False
) -> tuple[str, int]:
    """A signed token for ``user`` (with the admin claim if ``admin``) and its expiry."""
    now = int(time.time())
    exp = now + max(1, round(ttl_s if ttl_s is not None else settings.auth_token_ttl_s))
    claims: dict[str, object] = {"sub": user, "iat": now, "exp": exp}
    if admin:
        claims["admin"] = True
    return jwt.encode(claims, settings.auth_secret, ALGORITHM), exp


def verify(settings: Settings, token: str) -> Principal:
    """Check signature, algorithm and expiry; raises :class:`Unauthorized`."""
    try:
        claims = jwt.decode(
            token,
            settings.auth_secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except jwt.InvalidAlgorithmError:
        raise Unauthorized("token algorithm not allowed") from None
    except jwt.InvalidSignatureError:
        raise Unauthorized("bad token signature") from None
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid token: {type(exc).__name__}") from None
    return Principal(
        user=str(claims["sub"]), exp=float(claims["exp"]), admin=claims.get("admin") is True
    )


def header_or_query_token(conn: HTTPConnection) -> str | None:
    """The token from ``Authorization: Bearer`` or, failing that, ``?token=``."""
    header = conn.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("Authorization must be 'Bearer <token>'")
        return value.strip()
    return conn.query_params.get("token")


def subprotocol_token(offered: list[str]) -> str | None:
    """The token of a ``bearer.<token>`` subprotocol, if one was offered."""
    for proto in offered:
        if proto.startswith(BEARER_PREFIX):
            return proto[len(BEARER_PREFIX) :]
    return None


def _user(value: str) -> str:
    # The token's sub becomes the chat/whiteboard user: the same name rule as theirs.
    if not is_name(value):
        raise ValueError(f"must be {rule()}")
    return value


class TokenRequest(BaseModel):
    """Body of ``POST /token``."""

    user: Annotated[str, AfterValidator(_user)]


@router.post("/token")
async def token(request: Request) -> JSON:
    """Development login: sign a short-lived token for ``user`` (no password: lab use only)."""
    settings = state(request).settings
    raw = await read_limited(request, MAX_TOKEN_REQUEST_BYTES)
    try:
        body = TokenRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None
    value, exp = issue(settings, body.user)
    return JSON(
        {
            "access_token": value,
            "token_type": "bearer",
            "expires_in": exp - int(time.time()),
            "exp": exp,
        }
    )
