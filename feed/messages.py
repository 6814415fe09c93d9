"""Client → server WebSocket messages, validated with pydantic (docs/protocol.md, "WebSocket").

Validation is strict about shape and lenient about extra keys (forward compatibility). A frame
that fails yields a :class:`MessageError` whose ``code`` goes into the error frame: ``invalid_json``
(not JSON), ``unknown_message`` (not an object, or no or unknown ``type``) or ``invalid_message``
(known ``type``, wrong fields).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

from feed.exceptions import BadInput

MessageId = StrictInt | StrictStr | None


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Ping(_Message):
    """Client-initiated RTT probe; answered with ``pong``."""

    type: Literal["ping"]
    id: MessageId = None


class Pong(_Message):
    """Answer to the server's heartbeat ``ping``."""

    type: Literal["pong"]
    id: MessageId = None


class Publish(_Message):
    """Publish ``data`` to the socket's topic."""

    type: Literal["publish"]
    data: Any
    id: MessageId = None


class Auth(_Message):
    """First-message authentication."""

    type: Literal["auth"]
    token: Annotated[StrictStr, Field(min_length=1, max_length=8192)]


ClientMessage = Annotated[Ping | Pong | Publish | Auth, Field(discriminator="type")]
_ADAPTER: TypeAdapter[Ping | Pong | Publish | Auth] = TypeAdapter(ClientMessage)
KNOWN_TYPES = frozenset({"ping", "pong", "publish", "auth"})


class MessageError(BadInput):
    """A client frame that is not a valid message; ``code`` names the error frame."""

    def __init__(self, code: str, detail: Any) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


def parse_message(text: str | bytes) -> Ping | Pong | Publish | Auth:
    """Validate one text frame; raises :class:`MessageError`."""
    try:
        return _ADAPTER.validate_json(text)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        kinds = {e["type"] for e in errors}
        if "json_invalid" in kinds:
            raise MessageError("invalid_json", "frame is not JSON") from None
        # Not an object, or an object without a known ``type``: the same answer as before pydantic.
        if kinds & {"union_tag_invalid", "union_tag_not_found", "dict_type"}:
            raise MessageError(
                "unknown_message", f"type must be one of {sorted(KNOWN_TYPES)}"
            ) from None
        detail = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in errors[:5]]
        raise MessageError("invalid_message", detail) from None
