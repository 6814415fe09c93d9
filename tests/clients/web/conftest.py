"""Browser fixtures: one headless Debian Chromium per module, a fresh context per test.

Module scope, not session: Playwright's sync API keeps its own event loop running in this thread
while it is open, and pytest-asyncio's tests in later modules cannot start theirs meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clients.browser import launch
from experiments.front import Front
from experiments.tls import TLSFiles, make_tls
from servers.launch import ServerThread
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


# nginx with TLS in front of the app (experiments/front.py), and a Chromium that trusts it.


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """One local CA and certificate for every nginx in this module."""
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def pinned(playwright: Any, tls: TLSFiles) -> Iterator[Any]:
    """Chromium that trusts exactly this certificate's key (certificate checks stay on)."""
    browser = launch(playwright, args=(f"--ignore-certificate-errors-spki-list={tls.spki_pin()}",))
    yield browser
    browser.close()


@pytest.fixture
def front(live: ServerThread, tmp_path: Path, tls: TLSFiles) -> Iterator[Callable[..., Front]]:
    """Start nginx (TLS, access log on) in front of ``live``; options as Front's fields."""
    nginx = require("nginx", "the protocol tests proxy through Debian's nginx")
    started: list[Front] = []

    def start(**options: Any) -> Front:
        root = tmp_path / f"nginx-{len(started)}"
        f = Front(root, [live.port], tls=tls, access_log=True, nginx=nginx, **options)
        started.append(f.start())
        return f

    yield start
    for f in started:
        f.stop()
