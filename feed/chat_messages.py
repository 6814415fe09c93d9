"""Chat wire schema: what a ``WS /chat`` client may send, validated by pydantic.

Client frames are JSON objects discriminated by ``type``: ``join``, ``leave``, ``say``, ``dm``,
``who``. Anything else — not JSON, not an object, unknown ``type``, missing or extra fields, a
room or user name outside :func:`feed.names.is_name`, text over the limit — is rejected by
:func:`parse_client_message` with a :class:`ChatInputError` carrying an error code the server puts
in an ``error`` frame. The full protocol is in docs/demos.md (Chat).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from feed.exceptions import BadInput
from feed.names import is_name, rule

DEFAULT_CHAT_MAX_TEXT = 4096


def _name(value: str) -> str:
    if not is_name(value):
        raise ValueError(f"must be {rule()}")
    return value


Name = Annotated[str, AfterValidator(_name)]
# The client's own correlation id, echoed in replies and errors; never interpreted.
ClientId = Annotated[str | int | None, Field(default=None)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Join(_Message):
    type: Literal["join"]
    room: Name
    id: ClientId = None


class Leave(_Message):
    type: Literal["leave"]
    room: Name
    id: ClientId = None


class Say(_Message):
    type: Literal["say"]
    room: Name
    text: str
    id: ClientId = None


class DirectMessage(_Message):
    type: Literal["dm"]
    to: Name
    text: str
    id: ClientId = None


class Who(_Message):
    type: Literal["who"]
    room: Name
    id: ClientId = None


ClientMessage = Annotated[Join | Leave | Say | DirectMessage | Who, Field(discriminator="type")]
_ADAPTER: TypeAdapter[Join | Leave | Say | DirectMessage | Who] = TypeAdapter(ClientMessage)


class ChatInputError(BadInput):
    """A frame the chat protocol rejects; ``code`` goes into the error frame."""

    def __init__(self, code: str, detail: Any, client_id: Any = None) -> None:
        super().__init__(str(detail))
        self.code = code
        self.detail = detail
        self.client_id = client_id


def check_name(name: str, what: str = "user") -> str:
    """``name`` if :func:`feed.names.is_name`, else :class:`ChatInputError` ``bad_<what>``."""
    if not is_name(name):
        raise ChatInputError(f"bad_{what}", f"{what} must be {rule()}")
    return name


def parse_client_message(
    raw: str | bytes, max_text: int = DEFAULT_CHAT_MAX_TEXT
) -> Join | Leave | Say | DirectMessage | Who:
    """Validate one client frame; raises :class:`ChatInputError` with a specific code."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ChatInputError("invalid_json", "frame is not JSON") from None
    client_id = obj.get("id") if isinstance(obj, dict) else None
    try:
        message = _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        detail = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        raise ChatInputError("invalid_message", detail, client_id) from None
    text = getattr(message, "text", None)
    if text is not None and not 0 < len(text) <= max_text:
        raise ChatInputError("bad_text", f"text must be 1..{max_text} characters", client_id)
    return message
