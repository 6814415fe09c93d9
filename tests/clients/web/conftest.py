"""Browser fixtures: one headless Debian Chromium per module, a fresh context per test.

Module scope, not session: Playwright's sync API keeps its own event loop running in this thread
while it is open, and pytest-asyncio's tests in later modules cannot start theirs meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from clients.browser import launch
from tests.support import MS, require


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """Playwright's sync API; it runs its own loop, so tests using it are plain functions."""
    require("chromium", "the browser tests drive Debian's Chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    """Headless Chromium with a fresh temporary profile."""
    b = launch(playwright)
    yield b
    b.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """Open pages in their own contexts (separate cookies, caches and connection pools)."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_page(url: str | None = None, *, context: Any = None) -> Any:
        if context is None:
            context = browser.new_context()
            context.set_default_timeout(10_000 * MS)
            contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        if url is not None:
            page.goto(url)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"
