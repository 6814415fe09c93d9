"""The lab's app for Granian: ``granian --interface asgi --factory experiments.granian_app:app``.

The same ``create_app`` and the same frozen :class:`Settings` (from ``PUSHLAB_*``, which the bench
sets for the ticker), served by Granian's Rust HTTP/WebSocket stack instead of uvicorn. What is
uvicorn-only stays off: :mod:`servers.runner`'s drain on SIGTERM (Granian runs the lifespan
shutdown itself) and any direct writes to uvicorn's transport (the app falls back to plain ASGI
``send`` for protocol classes it does not recognise). Issue 8: "consider Granian as an
alternative ASGI server row".
"""

from __future__ import annotations

from fastapi import FastAPI

from feed.fdlimit import raise_nofile
from feed.settings import Settings
from servers.app import create_app


def app() -> FastAPI:
    """Called once in each Granian worker process."""
    raise_nofile()  # idle cells hold 10,000 sockets in this one process
    return create_app(Settings.from_env())
