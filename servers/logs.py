"""Structured logs (JSON lines, stdlib ``logging``) and token redaction.

Connection records go to the ``pushlab.conn`` logger with a ``pushlab`` dict of fields
(``event``, ``conn_id``, ``transport``, ``remote``, ``code``, ``duration_s``...). Tokens never
reach a log: the app never logs them, and :class:`RedactTokens` rewrites ``token=`` query values
in uvicorn's access and error records (EventSource can only send its token in the URL, and
uvicorn logs every request line with its query string).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson

CONN_LOGGER = "pushlab.conn"
TOKEN_QUERY_RE = re.compile(r"((?:^|[?&;])(?:access_)?token=)[^&\s\"';]*", re.IGNORECASE)
REDACTED = "[REDACTED]"
# uvicorn's loggers that print request lines or paths.
REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    """``text`` with every ``token=`` query value replaced."""
    return TOKEN_QUERY_RE.sub(r"\1" + REDACTED, text)


class RedactTokens(logging.Filter):
    """Rewrite ``token=`` values inside a record's message and arguments (keeps arg positions,
    which uvicorn's access formatter unpacks)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "token=" in record.msg.lower():
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact(a) if isinstance(a, str) and "token=" in a.lower() else a
                for a in record.args
            )
        return True


def install_redaction() -> None:
    """Attach :class:`RedactTokens` to uvicorn's loggers (idempotent)."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the ``pushlab`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        fields = getattr(record, "pushlab", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def log_config(level: str, json_lines: bool) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn: its defaults plus ``pushlab`` in JSON."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = orjson.loads(orjson.dumps(LOGGING_CONFIG))
    config["formatters"]["json"] = {"()": f"{__name__}.JSONFormatter"}
    config["filters"] = {"redact": {"()": f"{__name__}.RedactTokens"}}
    config["handlers"]["pushlab"] = {
        "class": "logging.StreamHandler",
        "formatter": "json" if json_lines else "default",
        "stream": "ext://sys.stderr",
    }
    if json_lines:  # uvicorn's own lines too, so the whole stream is JSON lines
        for handler in ("default", "access"):
            config["handlers"][handler]["formatter"] = "json"
    for name in REDACTED_LOGGERS:
        config["loggers"].setdefault(name, {})["filters"] = ["redact"]
    config["loggers"]["pushlab"] = {
        "handlers": ["pushlab"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


# Looked up once: getLogger takes logging's module lock, and log_conn runs twice per connection.
_CONN_LOG = logging.getLogger(CONN_LOGGER)


def log_conn(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One connection-lifecycle record (``connect``, ``disconnect``, ``error``, ``reject``)."""
    if _CONN_LOG.isEnabledFor(level):
        _CONN_LOG.log(level, event, extra={"pushlab": {"event": event, **fields}})


def elapsed(start: float) -> float:
    """Seconds since ``start`` (``time.monotonic()``), rounded for logs."""
    return round(time.monotonic() - start, 6)
