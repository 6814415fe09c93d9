"""The whiteboard in headless Chromium: users draw with the mouse and see each other's strokes."""

from __future__ import annotations

import pytest

from clients.browser import launch
from tests.experiments.test_cluster import start_cluster
from tests.support import MS

pytestmark = pytest.mark.browser


def draw(page, points: list[tuple[int, int]]) -> None:
    """Draw one stroke with the real mouse."""
    box = page.locator("#board").bounding_box()
    x0, y0 = box["x"], box["y"]
    page.mouse.move(x0 + points[0][0], y0 + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(x0 + x, y0 + y, steps=3)
    page.mouse.up()


def strokes(page, n: int) -> None:
    page.wait_for_function(f"() => window.whiteboard.strokes.size === {n}")


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_two_users_draw_and_a_late_joiner_sees_the_board(live, new_page, transport):
    """Strokes cross between contexts; a late joiner gets the board; undo and clear reach all."""
    url = f"{live.url}/whiteboard?board=b-{transport}&transport={transport}"
    ann = new_page(f"{url}&user=ann")
    bob = new_page(f"{url}&user=bob")
    for page in (ann, bob):
        page.wait_for_function("() => window.whiteboard.users.length === 2")
    draw(ann, [(100, 100), (200, 160), (300, 120)])
    strokes(bob, 1)
    bob.wait_for_function("() => window.whiteboard.cursors.get('ann')?.x === 3000")  # presence
    draw(bob, [(120, 300), (420, 340)])
    draw(bob, [(500, 300), (600, 500)])
    strokes(ann, 3)
    assert bob.evaluate("() => [...window.whiteboard.strokes.keys()]")[0].startswith("ann/")

    late = new_page(f"{url}&user=cat")
    strokes(late, 3)
    assert late.evaluate("() => window.whiteboard.client.seq") == 3

    bob.click("#undo")
    for page in (ann, bob, late):
        strokes(page, 2)
    keys = ann.evaluate("() => [...window.whiteboard.strokes.keys()]")
    assert [k.split("/")[0] for k in keys] == ["ann", "bob"]  # only bob's latest went
    ann.click("#clear")
    for page in (ann, bob, late):
        strokes(page, 0)


def test_boards_are_isolated_and_a_reconnect_catches_up(live, new_page):
    """A stroke on board x stays off board y; a dropped client catches up from its seq."""
    x = new_page(f"{live.url}/whiteboard?board=x&user=ann")
    y = new_page(f"{live.url}/whiteboard?board=y&user=bob")
    x2 = new_page(f"{live.url}/whiteboard?board=x&user=dan")
    x2.wait_for_function("() => window.whiteboard.client.state === 'open'")
    draw(x, [(10, 10), (50, 50)])
    strokes(x2, 1)
    x2.evaluate(
        "() => { window.whiteboard.client.running = false; window.whiteboard.client.drop(); }"
    )
    draw(x, [(60, 60), (90, 90)])
    draw(x, [(100, 60), (130, 90)])
    x2.evaluate("() => window.whiteboard.client.start()")
    strokes(x2, 3)
    # Caught up by replaying the operations after its seq, not by a second snapshot.
    snapshots = "() => window.whiteboard.log.filter(l => l.startsWith('snapshot')).length"
    assert x2.evaluate(snapshots) == 1
    y.wait_for_function("() => window.whiteboard.client.state === 'open'")
    assert y.evaluate("() => window.whiteboard.strokes.size") == 0
    draw(y, [(10, 10), (20, 20)])
    strokes(y, 1)
    strokes(x, 3)


@pytest.mark.nginx
@pytest.mark.redis
def test_whiteboard_through_nginx_over_wss(tmp_path, playwright):
    """Two Chromium users draw on one board through the cluster's nginx, over wss://."""
    # One instance: a board lives in one instance's memory (servers/demos/whiteboard.py).
    cluster = start_cluster(tmp_path, instances=1)
    assert cluster.tls is not None
    # Chromium trusts exactly the cluster's server key (its CA cannot be given on the command
    # line; ignore_https_errors would accept any certificate). Checks stay on for all else.
    browser = launch(
        playwright, args=(f"--ignore-certificate-errors-spki-list={cluster.tls.spki_pin()}",)
    )
    sockets: list[str] = []
    errors: list[str] = []
    try:
        url = f"{cluster.url}/whiteboard?board=nginx&transport=ws"
        pages = []
        for user in ("ann", "bob"):
            page = browser.new_context().new_page()
            page.set_default_timeout(10_000 * MS)
            page.on("websocket", lambda ws: sockets.append(ws.url))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}&user={user}")
            pages.append(page)
        ann, bob = pages
        for page in pages:
            page.wait_for_function("() => window.whiteboard.users.length === 2")
        draw(ann, [(100, 100), (200, 160), (300, 120)])
        strokes(bob, 1)
        draw(bob, [(120, 300), (420, 340)])
        strokes(ann, 2)
    finally:
        browser.close()
        cluster.stop()
    wss = f"{cluster.url.replace('https', 'wss')}/whiteboard/ws?"
    assert len(sockets) == 2 and all(s.startswith(wss) for s in sockets), sockets
    assert not errors, errors


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_with_auth_the_page_draws_as_its_token_user(serve, settings, new_page, transport):
    """?token= is sent the browser's way (subprotocol, EventSource query, Bearer POST)."""
    from servers.auth import issue

    server = serve(settings.replace(auth=True))
    ann, _ = issue(server.settings, "ann")
    bob, _ = issue(server.settings, "bob")
    url = f"{server.url}/whiteboard?board=auth-{transport}&transport={transport}"
    a = new_page(f"{url}&token={ann}")
    b = new_page(f"{url}&token={bob}")
    for page in (a, b):
        page.wait_for_function("() => window.whiteboard.users.length === 2")
    assert a.evaluate("() => window.whiteboard.user") == "ann"
    draw(a, [(100, 100), (200, 160)])
    strokes(b, 1)
    assert b.evaluate("() => [...window.whiteboard.strokes.keys()]")[0].startswith("ann/")
