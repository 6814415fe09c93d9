"""Errors raised by pushlab.

Exception tree::

    PushlabError
    ├── BadInput (ValueError)              client sent something the contract forbids
    │   ├── BadCursor                      non-integer or negative ``since`` / Last-Event-ID
    │   ├── BadTopic                       empty, too long or unsafe topic name
    │   └── PayloadTooLarge                publish body over ``max_publish_bytes``
    ├── CapacityError                      a server limit is reached: HTTP 503 / WS close 1013
    │   └── TopicLimit                     no room for another topic (``max_topics``...)
    ├── Refused                            the server will not serve this client (as it is)
    │   ├── Unauthorized                   missing/bad/expired token: HTTP 401 / WS close 1008
    │   ├── OriginNotAllowed               Origin not in the allowlist: HTTP 403
    │   ├── AdminDisabled                  an admin route while ``PUSHLAB_ADMIN=0``: HTTP 403
    │   ├── AdminRequired                  an admin route with a token without the admin claim
    │   ├── UserMismatch                   ``?user=`` names someone else than the token: HTTP 403
    │   └── TooManyConnections             per-IP connection cap reached: HTTP 429
    ├── SubscriptionClosed                 the broker ended a subscription (overflow, kick...)
    ├── ConnectionClosedOK                 the server ended the stream cleanly (shutdown, kick)
    └── TransportError (OSError)           a connection failed; retryable by default
        └── FatalTransportError            retrying cannot help (4xx, auth, policy close)

``BadInput`` subclasses ``ValueError`` and ``TransportError`` subclasses ``OSError`` so that
existing ``except`` blocks keep working when pushlab code raises them.
"""

from __future__ import annotations


class PushlabError(Exception):
    """Root of every pushlab error."""


class BadInput(PushlabError, ValueError):
    """Input that violates the wire contract; maps to a 4xx answer."""

    code = "bad_input"


class BadCursor(BadInput):
    """A resume point (``since`` or ``Last-Event-ID``) that is not a non-negative integer."""

    code = "bad_cursor"


class BadTopic(BadInput):
    """A topic name outside the allowed alphabet or length."""

    code = "bad_topic"


class PayloadTooLarge(BadInput):
    """A publish body over the configured limit."""

    code = "payload_too_large"


class ConnectionClosedOK(PushlabError):
    """The server closed the stream on purpose; the client may resume."""


class TransportError(PushlabError, OSError):
    """A connection-level failure; clients retry these with backoff."""


class FatalTransportError(TransportError):
    """A failure that retrying cannot fix, such as a 4xx answer or a policy close."""

    def __init__(self, message: str, *, status: int | None = None, close_code: int | None = None):
        super().__init__(message)
        self.status = status
        self.close_code = close_code


class CapacityError(PushlabError):
    """A server-side limit (topics, connections) is reached; try again later (HTTP 503, WS 1013)."""


class TopicLimit(CapacityError):
    """A new topic is refused: every one of ``max_topics`` is held by a subscriber, or
    ``max_subscriber_topics`` topics are already held open with no event in them."""

    code = "topic_limit"


class Refused(PushlabError):
    """The server refuses this request; ``status`` is the HTTP answer, ``code`` the error code."""

    status = 403
    code = "forbidden"


class Unauthorized(Refused):
    """No token, or a token that is malformed, badly signed, of the wrong algorithm or expired."""

    status = 401
    code = "unauthorized"


class OriginNotAllowed(Refused):
    """A cross-site ``Origin`` outside ``PUSHLAB_ORIGINS`` (CSWSH protection)."""

    status = 403
    code = "origin_not_allowed"


class AdminDisabled(Refused):
    """An admin route while admin routes are off (``PUSHLAB_ADMIN=0``, the default)."""

    status = 403
    code = "admin_disabled"


class AdminRequired(Refused):
    """An admin route called with a valid token that lacks the ``admin`` claim."""

    status = 403
    code = "admin_required"


class UserMismatch(Refused):
    """With auth on the user is the token's ``sub``; a ``?user=`` naming anyone else is refused."""

    status = 403
    code = "user_mismatch"


class TooManyConnections(Refused):
    """The client's IP already holds ``PUSHLAB_MAX_CONNS_PER_IP`` live connections."""

    status = 429
    code = "too_many_connections"


class SubscriptionClosed(PushlabError):
    """The broker ended a subscription: ``reason`` is ``overflow``, ``kicked`` or ``shutdown``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
