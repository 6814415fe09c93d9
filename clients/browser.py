"""Launching Debian's Chromium under Playwright, the way this lab's machines need it.

Playwright's own browser download (``playwright install``) cannot run here; we drive the system
package through ``executable_path``. The flags keep a headless Chromium from reaching for Google's
services (the machines' closed network refuses those connections, many at a time) and from using
QUIC, GPU or a shared profile: ``launch()`` gives every run a fresh temporary profile.
"""

from __future__ import annotations

import shutil
from typing import Any

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str | None:
    """Path of the system Chromium, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch(
    playwright: Any, *, path: str | None = None, args: tuple[str, ...] = (), quic: bool = False
) -> Any:
    """A headless Chromium ``Browser`` from ``playwright.sync_api`` (or async: the same call).

    ``quic=True`` leaves QUIC on: WebTransport needs it (clients/web/webtransport.js).
    """
    executable = path or chromium_path()
    if executable is None:
        raise RuntimeError("chromium is not installed; run `make system`")
    flags = [a for a in CHROMIUM_ARGS if quic is False or a != "--disable-quic"]
    return playwright.chromium.launch(
        executable_path=executable, headless=True, args=[*flags, *args]
    )
