"""geventhttpclient plumbing shared by the HTTP locustfiles (gevent-native sockets)."""

from __future__ import annotations

from typing import Any

from geventhttpclient import HTTPClient
from geventhttpclient.url import URL


def open_client(host: str, read_timeout_s: float) -> Any:
    """One keep-alive connection to ``host``; ``read_timeout_s`` bounds silence on it."""
    return HTTPClient.from_url(
        URL(host),
        concurrency=1,
        connection_timeout=5.0,
        network_timeout=read_timeout_s,
        headers={"User-Agent": "pushlab-locust"},
    )


def last_socket(response: Any) -> Any:
    """The socket a response is being read from (for cutting it at stop)."""
    return getattr(response, "_sock", None)
