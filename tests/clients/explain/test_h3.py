"""``pushlab explain h3`` against a real server: what a WebTransport session looks like."""

from __future__ import annotations

import pytest

from clients.explain import h3
from clients.explain.cli import add_arguments, report_for


def test_explain_h3_shows_the_session(serve, settings):
    """SETTINGS, the CONNECT and its 200, the feed stream, and the padded first datagram."""
    live = serve(settings.replace(webtransport_port=0, ticker_rate=20))
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["h3", "--url", live.url, "--events", "2", "--seconds", "5"])
    report, text = report_for(args)
    server = {name: value for _, name, value in report["server_settings"]}
    assert server["ENABLE_WEBTRANSPORT"] == 1 and server["H3_DATAGRAM"] == 1
    assert server["ENABLE_CONNECT_PROTOCOL"] == 1
    assert dict(report["request"]["headers"])[":protocol"] == "webtransport"
    assert report["request"]["stream_id"] == report["session_id"] == 0
    assert dict(report["response_headers"])[":status"] == "200"
    feed = [sid for sid, kind, typ in report["streams"] if typ == "webtransport"]
    assert len(feed) == 1 and feed[0] % 4 == 3  # opened by the server, unidirectional
    assert report["lines"][0]["text"].startswith('{"type":"ready"')
    assert len(report["lines"]) >= 3
    # RFC 9000 §14.1: a client's Initial datagram is padded to at least 1,200 bytes.
    assert report["udp"]["sent"][0] >= 1200
    assert report["udp"]["bytes_received"] == sum(report["udp"]["received"])
    assert "server unidirectional  webtransport" in text


def test_explain_h3_without_webtransport_says_so(live):
    """A server started without --webtransport-port is reported, not a traceback."""
    with pytest.raises(ConnectionError, match="without WebTransport"):
        h3.explain(live.url, "t")
