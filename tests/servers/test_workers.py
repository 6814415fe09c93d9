"""``pushlab serve --workers N``: the checks and the settings handed to each worker."""

from __future__ import annotations

import pytest

from feed.settings import Settings
from servers.workers import check, reuse_port_socket, settings_env


def test_workers_refuse_a_private_feed() -> None:
    """N > 1 on the memory broker would serve N different feeds: refused, with the reason."""
    with pytest.raises(ValueError, match="shared broker"):
        check(Settings(port=8123), 2)
    with pytest.raises(ValueError, match="fixed --port"):
        check(Settings(port=0, broker="redis://127.0.0.1:6379/0"), 2)
    with pytest.raises(ValueError, match=">= 1"):
        check(Settings(), 0)
    check(Settings(port=8123, broker="redis://127.0.0.1:6379/0"), 3)
    check(Settings(), 1)


def test_workers_read_back_the_same_settings() -> None:
    """The PUSHLAB_* variables a worker gets rebuild the parent's settings exactly."""
    s = Settings(port=8123, broker="redis://x:1/0", ws_compression=True, ticker_rate=2.5)
    assert Settings.from_env(settings_env(s)) == s


def test_two_listeners_share_one_port() -> None:
    """SO_REUSEPORT lets a second worker bind the port the first holds."""
    a = reuse_port_socket("127.0.0.1", 0)
    try:
        b = reuse_port_socket("127.0.0.1", a.getsockname()[1])
        b.close()
    finally:
        a.close()
