"""``pushlab browser-run`` in short form: every transport and both whiteboard paths get figures."""

from __future__ import annotations

import argparse
import math

import pytest

from experiments import browser_run
from experiments.records import BrowserCell
from experiments.results import load_as
from feed.wire.contract import TRANSPORTS
from tests.support import require

pytestmark = pytest.mark.browser


def test_short_run_writes_a_cell_per_transport(tmp_path, capsys):
    """A one-second run writes meta and a cell for each transport and whiteboard transport."""
    require("chromium", "browser-run drives Debian's Chromium")
    parser = argparse.ArgumentParser()
    browser_run.add_arguments(parser)
    args = parser.parse_args(
        ["--seconds", "1", "--warmup", "0.2", "--strokes", "3", "--root", str(tmp_path)]
    )
    assert browser_run.run(args) == 0
    (folder,) = tmp_path.iterdir()
    meta, cells = load_as(folder, BrowserCell)
    assert meta["params"]["seconds"] == 1 and meta["settings"]["ticker_rate"] == 20
    feed = {c["transport"]: c for c in cells if c["kind"] == "feed"}
    assert sorted(feed) == sorted(TRANSPORTS)
    for cell in feed.values():
        assert cell["events"] > 0 and cell["no_loss"] and not math.isnan(cell["latency_ms_p50"])
    acks = {c["transport"]: c for c in cells if c["kind"] == "whiteboard_ack"}
    assert sorted(acks) == ["sse+post", "ws"]
    assert all(c["ack_ms_count"] == 3 for c in acks.values())
    assert {(c["protocol"], c["next_hop_protocol"]) for c in cells} == {("direct", "http/1.1")}
    assert "wrote" in capsys.readouterr().out


@pytest.mark.nginx
def test_protocols_through_nginx_record_what_the_page_saw(tmp_path):
    """Through nginx, h1 and h2 cells say what Chromium negotiated and how many streams opened."""
    require("chromium", "browser-run drives Debian's Chromium")
    require("nginx", "h1 and h2 go through Debian's nginx")
    parser = argparse.ArgumentParser()
    browser_run.add_arguments(parser)
    args = parser.parse_args(
        ["--seconds", "0.5", "--warmup", "0.2", "--strokes", "2", "--root", str(tmp_path)]
        + ["--protocols", "h1,h2", "--max-streams", "8", "--stall-window", "1"]
    )
    assert browser_run.run(args) == 0
    (folder,) = tmp_path.iterdir()
    meta, cells = load_as(folder, BrowserCell)
    assert [(p["name"], p["via"], p["http2"], p["max_streams"]) for p in meta["protocols"]] == [
        ("h1", "nginx", False, None),
        ("h2", "nginx", True, 8),
    ]
    hops = {(c["protocol"], c["next_hop_protocol"]) for c in cells}
    assert hops == {("h1", "http/1.1"), ("h2", "h2")}
    streams = {c["protocol"]: c for c in cells if c["kind"] == "streams"}
    # Chromium's six per host over HTTP/1.1; nginx's stream limit over HTTP/2.
    assert [(streams[p]["streams_open"], streams[p]["streams_waiting"]) for p in ("h1", "h2")] == [
        (6, 4),
        (8, 2),
    ]
    assert all(streams[p]["first_event_ms_count"] == streams[p]["streams_open"] for p in streams)
    feed = [c for c in cells if c["kind"] == "feed"]
    assert len(feed) == 2 * len(TRANSPORTS) and all(c["events"] > 0 and c["no_loss"] for c in feed)


def test_h3_records_what_chromium_saw_over_quic(tmp_path):
    """Over hypercorn's HTTP/3 the page loads as h3, every transport delivers, and ten
    EventSources open at once (streams of one QUIC connection, not six per host)."""
    require("chromium", "browser-run drives Debian's Chromium")
    parser = argparse.ArgumentParser()
    browser_run.add_arguments(parser)
    args = parser.parse_args(
        ["--seconds", "0.5", "--warmup", "0.2", "--strokes", "2", "--root", str(tmp_path)]
        + ["--protocols", "h3", "--stall-window", "2"]
    )
    assert browser_run.run(args) == 0
    (folder,) = tmp_path.iterdir()
    meta, cells = load_as(folder, BrowserCell)
    assert [(p["name"], p["via"]) for p in meta["protocols"]] == [("h3", "hypercorn")]
    assert {(c["protocol"], c["next_hop_protocol"]) for c in cells} == {("h3", "h3")}
    feed = [c for c in cells if c["kind"] == "feed"]
    assert len(feed) == len(TRANSPORTS) and all(c["events"] > 0 and c["no_loss"] for c in feed)
    (streams,) = [c for c in cells if c["kind"] == "streams"]
    assert (streams["streams_open"], streams["streams_waiting"]) == (10, 0)


@pytest.mark.parametrize("text", ["", "h4", "h1,h1", "direct,,spdy"])
def test_unknown_protocols_are_refused(text):
    """``--protocols`` takes known names, each once; anything else is a usage error."""
    with pytest.raises(argparse.ArgumentTypeError):
        browser_run.protocol_list(text)
