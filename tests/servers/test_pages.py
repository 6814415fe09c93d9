"""The dashboard pages, static JS modules and the live ticker control."""

from __future__ import annotations

import httpx
import pytest

from servers.launch import ServerThread
from tests.support import wait_until


@pytest.fixture
def ticking(serve, settings) -> ServerThread:
    return serve(settings.replace(ticker_rate=50, ticker_size=32, admin=True))


def test_pages_and_modules_are_served(live):
    """/, /whiteboard and the ES modules under /web answer with the right types."""
    with httpx.Client(base_url=live.url, trust_env=False) as http:
        for path, kind in [
            ("/", "text/html"),
            ("/whiteboard", "text/html"),
            ("/web/sse.js", "javascript"),
        ]:
            r = http.get(path)
            assert r.status_code == 200 and kind in r.headers["content-type"], path
        assert http.get("/web/nope.js").status_code == 404


def test_ticker_rate_and_size_change_live(ticking):
    """POST /admin/ticker changes the running ticker; new events have the new size."""
    with httpx.Client(base_url=ticking.url, trust_env=False) as http:
        assert http.get("/admin/ticker").json() == {"topic": "ticks", "rate": 50.0, "size": 32}
        r = http.post("/admin/ticker", params={"rate": 100, "size": 500})
        assert r.status_code == 200 and r.json()["size"] == 500

        def big_event() -> bool:
            events = http.get("/poll", params={"topic": "ticks", "since": 0}).json()["events"]
            return any(len(str(e["data"])) >= 500 for e in events)

        wait_until(big_event, 5, "an event of the new size")


@pytest.mark.parametrize("params", [{"rate": -1}, {"rate": "fast"}, {"size": -5}])
def test_bad_ticker_values_are_422(ticking, params):
    """Negative or non-numeric rate/size are parameter errors."""
    with httpx.Client(base_url=ticking.url, trust_env=False) as http:
        r = http.post("/admin/ticker", params=params)
        assert r.status_code == 422 and r.json()["error"] == "invalid_parameter"


def test_ticker_size_over_publish_limit_is_413(ticking):
    """A payload larger than max_publish_bytes is refused."""
    with httpx.Client(base_url=ticking.url, trust_env=False) as http:
        r = http.post("/admin/ticker", params={"size": ticking.settings.max_publish_bytes + 1})
        assert r.status_code == 413


def test_ticker_control_is_admin_only(serve, settings):
    """Admin is off by default: the control answers 403; without a ticker, 404."""
    off = serve(settings.replace(ticker_rate=5))
    r = httpx.post(f"{off.url}/admin/ticker", params={"rate": 1}, trust_env=False)
    assert (r.status_code, r.json()["error"]) == (403, "admin_disabled")
    none = serve(settings.replace(admin=True))
    assert (
        httpx.post(f"{none.url}/admin/ticker", params={"rate": 1}, trust_env=False).status_code
        == 404
    )
