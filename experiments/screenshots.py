"""``pushlab screenshots``: serve the app, open the dashboard and whiteboard in headless Chromium,
wait until live data shows, and write PNGs (default ``docs/img/``).

The server runs in this process on a free loopback port with the ticker on; the pictures show
what the page really displayed at that moment (nothing is staged but the drawing on the board).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from clients.browser import launch
from feed.settings import Settings
from servers.launch import ServerThread

EVERY = "Object.values(window.pushlab.clients).every"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags."""
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="folder for the PNGs")
    parser.add_argument("--rate", type=float, default=20.0, help="ticker events/s")
    parser.add_argument("--size", type=int, default=64, help="ticker payload bytes")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait per page")


def _draw(page: Any, points: list[tuple[float, float]]) -> None:
    box = page.locator("#board").bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
    page.mouse.up()


def _dashboard(browser: Any, url: str, out: Path, timeout_ms: float) -> Path:
    page = browser.new_page(viewport={"width": 1400, "height": 760})
    page.set_default_timeout(timeout_ms)
    page.goto(f"{url}/")
    page.wait_for_function(f"() => window.pushlab && {EVERY}(c => c.counters.events >= 20)")
    # Show one recovery: the SSE panel is dropped, backs off, resumes with no lost seq.
    page.locator('section.panel[data-transport="sse"] button.drop').click()
    page.wait_for_function("() => window.pushlab.clients.sse.counters.reconnects >= 1")
    seq = page.evaluate("() => window.pushlab.clients.sse.lastSeq")
    page.wait_for_function(f"() => {EVERY}(c => c.lastSeq >= {seq + 10} && c.contiguous)")
    page.wait_for_timeout(300)  # one render tick (250 ms) so the table shows the latest counts
    path = out / "dashboard.png"
    page.screenshot(path=str(path))
    page.close()
    return path


def _whiteboard(browser: Any, url: str, out: Path, timeout_ms: float) -> Path:
    board = f"{url}/whiteboard?board=demo"
    pages = {}
    for user in ("ann", "bob"):
        ctx = browser.new_context(viewport={"width": 1300, "height": 720})
        ctx.set_default_timeout(timeout_ms)
        pages[user] = ctx.new_page()
        pages[user].goto(f"{board}&user={user}")
        pages[user].wait_for_function("() => window.whiteboard.client.state === 'open'")
    ann, bob = pages["ann"], pages["bob"]
    ann.wait_for_function("() => window.whiteboard.users.length === 2")
    house: list[tuple[float, float]] = [
        (200, 420),
        (200, 260),
        (330, 160),
        (460, 260),
        (460, 420),
        (200, 420),
    ]
    _draw(ann, house)
    _draw(ann, [(300, 420), (300, 330), (360, 330), (360, 420)])
    bob.fill("#color", "#e0a800")
    bob.fill("#width", "8")
    _draw(bob, [(720, 120), (780, 90), (840, 120), (850, 180), (800, 220), (740, 200), (720, 120)])
    bob.fill("#color", "#2e8b57")
    _draw(bob, [(60, 440), (300, 440), (560, 445), (940, 440)])
    ann.wait_for_function("() => window.whiteboard.strokes.size === 4")
    box = bob.locator("#board").bounding_box()
    bob.mouse.move(box["x"] + 640, box["y"] + 300, steps=5)
    ann.wait_for_function("() => window.whiteboard.cursors.get('bob')?.x === 6400")
    ann.wait_for_timeout(100)  # the next animation frame draws the label
    path = out / "whiteboard.png"
    ann.screenshot(path=str(path))
    for page in pages.values():
        page.context.close()
    return path


def run(args: argparse.Namespace) -> int:
    """Write dashboard.png and whiteboard.png."""
    from playwright.sync_api import sync_playwright

    # admin: the pictures show the dashboard's ticker control, which is an admin route.
    settings = Settings.from_env(ticker_rate=args.rate, ticker_size=args.size, admin=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with ServerThread(settings) as server, sync_playwright() as p:
        url = server.url
        browser = launch(p)
        try:
            timeout_ms = args.timeout * 1000
            for path in (
                _dashboard(browser, url, args.out, timeout_ms),
                _whiteboard(browser, url, args.out, timeout_ms),
            ):
                print(f"wrote {path}")
        finally:
            browser.close()
    return 0
