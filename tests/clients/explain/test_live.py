"""``pushlab explain`` against a real server: the decoded fields are what RFC 6455 and we say."""

from __future__ import annotations

import json

import httpx
import pytest

from clients.explain import handshake, poll, sse, stream, ws_frames
from feed.wire.ws import TEXT
from pushlab.cli import main


def publish(url: str, topic: str, n: int) -> None:
    with httpx.Client(trust_env=False) as http:
        for i in range(n):
            assert http.post(f"{url}/publish", params={"topic": topic}, json={"i": i}).is_success


def test_handshake_accept_key_is_verified(live):
    """The server's Sec-WebSocket-Accept equals the one computed step by step from our key."""
    report = handshake.explain(live.url)
    assert report["status"] == 101
    assert report["accept_ok"] is True
    steps = report["accept_steps"]
    assert steps["concat"] == steps["key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert report["rfc6455_sample"]["ok"] is True
    assert report["request"].startswith("GET /ws?topic=explain HTTP/1.1\r\n")
    assert report["response"].startswith("HTTP/1.1 101 Switching Protocols\r\n")


def test_frames_masked_one_way_only(live):
    """Every client frame is masked, no server frame is; replies decode to what was asked."""
    report = ws_frames.explain(live.url)
    steps = {s["step"].split(":")[0]: s for s in report["steps"]}
    sent = [f for s in report["steps"] for f in s["sent"]]
    received = [f for s in report["steps"] for f in s["received"]]
    assert sent and all(f["masked"] and f["mask_key"] for f in sent)
    assert received and not any(f["masked"] or f["mask_key"] for f in received)
    assert (
        json.loads(steps["first frame from the server"]["received"][0]["text"])["type"] == "ready"
    )
    assert json.loads(steps["text frame"]["received"][0]["text"]) == {"type": "pong", "id": 1}
    pong = steps["ping control frame"]["received"][0]
    assert (pong["kind"], pong["opcode"], pong["payload"]) == ("pong", 0xA, b"hello".hex(" "))
    assert steps["unsolicited pong"]["received"] == []
    fragmented = steps["one message in two frames"]
    assert [(f["fin"], f["opcode"]) for f in fragmented["sent"]] == [(False, TEXT), (True, 0)]
    assert json.loads(fragmented["received"][0]["text"]) == {"type": "pong", "id": 2}
    big = steps["a 200-byte id"]["received"][0]
    assert (big["length_form"], big["payload_length"]) == ("16-bit", 223)
    close = steps["close frame 1000 'bye'"]["received"][0]
    assert (close["kind"], close["close_code"], close["close_reason"]) == ("close", 1000, "bye")
    assert [f["form"] for f in report["length_forms"]] == ["7-bit", "16-bit", "64-bit"]


def test_frames_with_permessage_deflate_set_rsv1(serve, settings):
    """With compression allowed, uvicorn accepts permessage-deflate and sets RSV1 on data."""
    server = serve(settings.replace(ws_compression=True))
    report = ws_frames.explain(server.url, deflate=True)
    assert report["extensions"].startswith("permessage-deflate")
    data_frames = [f for s in report["steps"] for f in s["received"] if f["opcode"] == TEXT]
    assert data_frames and all(f["rsv1"] for f in data_frames)
    inflated = [json.loads(f["inflated"]) for f in data_frames]
    assert {"type": "pong", "id": 1} in inflated
    controls = [f for s in report["steps"] for f in s["received"] if f["opcode"] >= 0x8]
    assert controls and not any(f["rsv1"] for f in controls)


def test_sse_lines_are_annotated(serve, settings):
    """retry, the ready event, ids, data lines and keep-alive comments all appear, decoded."""
    server = serve(settings.replace(keepalive_s=0.2))
    publish(server.url, "s", 2)
    report = sse.explain(server.url, "s", since=0, seconds=1.0, max_bytes=100_000)
    lines = report["lines"]
    kinds = [x["kind"] for x in lines]
    assert report["status"] == 200 and report["chunked"]
    assert report["headers"]["content-type"].startswith("text/event-stream")
    assert lines[0] == lines[0] | {"kind": "retry", "value": str(settings.sse_retry_ms)}
    assert [x["value"] for x in lines if x["kind"] == "id"][:3] == ["0", "1", "2"]
    assert "comment" in kinds
    assert report["bytes"]["chunk_framing"] > 0
    assert report["bytes"]["stream"] == len(report["stream"].encode())


def test_poll_two_requests_one_connection(live):
    """A /poll and a /long-poll share one keep-alive TCP connection; overhead adds up."""
    publish(live.url, "p", 3)
    report = poll.explain(live.url, "p", since=0, timeout=1.0)
    first, second = report["exchanges"]
    assert report["same_local_port"] is True
    assert (first["status"], first["events"], second["status"], second["events"]) == (
        200,
        3,
        200,
        1,
    )
    for ex in report["exchanges"]:
        b = ex["bytes"]
        assert b["total"] == b["request"] + b["response_head"] + b["body"]
        assert 0 < b["events"] < b["body"]
        assert ex["overhead_fraction"] == pytest.approx(1 - b["events"] / b["total"], abs=1e-4)
    assert report["bytes_received"] == sum(
        ex["bytes"]["response_head"] + ex["bytes"]["body"] for ex in report["exchanges"]
    )


def test_empty_long_poll_is_a_204_with_cursor(live):
    """With nothing new, the long-poll answers 204 and the cursor in a header."""
    report = poll.explain(live.url, "quiet", timeout=0.2)
    second = report["exchanges"][1]
    assert (second["status"], second["header_cursor"], second["bytes"]["body"]) == (204, "0", 0)


@pytest.mark.parametrize("what", ["handshake", "frames", "sse", "stream", "poll", "h2"])
def test_cli_json_and_text(live, what, capsys):
    """Each subcommand prints text, and valid JSON with --json."""
    extra = ["--seconds", "0.3"] if what in ("sse", "stream") else []
    assert main(["explain", what, "--url", live.url, *extra]) == 0
    assert capsys.readouterr().out.strip()
    assert main(["explain", what, "--url", live.url, "--json", *extra]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), dict)


def test_cli_refuses_non_loopback_and_dead_servers(capsys):
    """A non-loopback URL or a closed port is a clear error, exit 1."""
    assert main(["explain", "poll", "--url", "http://example.com"]) == 1
    assert "loopback" in capsys.readouterr().err
    assert main(["explain", "poll", "--url", "http://127.0.0.1:9"]) == 1


def test_sse_last_event_id_wins_over_since(live):
    """With Last-Event-ID: 3 and ?since=0 the stream starts after 3, as browsers rely on."""
    publish(live.url, "r", 5)
    report = sse.explain(live.url, "r", since=0, seconds=0.5, last_event_id=3)
    assert "Last-Event-ID: 3\r\n" in report["request"]
    ids = [x["value"] for x in report["lines"] if x["kind"] == "id"]
    assert ids == ["3", "4", "5"]  # the ready event carries the cursor, then events 4 and 5


def test_stream_chunks_and_lines_are_shown(serve, settings):
    """The NDJSON stream: its first chunks byte for byte, then ready, events and heartbeats
    named; Pushlab-Cursor wins over ?since; the byte counts add up."""
    server = serve(settings.replace(keepalive_s=0.2))
    publish(server.url, "n", 3)
    report = stream.explain(server.url, "n", since=0, seconds=1.0, max_bytes=100_000, cursor=1)
    assert report["status"] == 200 and report["chunked"]
    assert report["headers"]["content-type"] == "application/x-ndjson"
    assert "Pushlab-Cursor: 1\r\n" in report["request"]
    kinds = [x["kind"] for x in report["lines"]]
    assert kinds[:3] == ["ready", "event", "event"] and "heartbeat" in kinds
    assert json.loads(report["lines"][0]["line"])["cursor"] == 1
    first = report["chunks"][0]
    assert first["wire"] == f"{first['size']:x}\r\n" + report["lines"][0]["line"] + "\n\r\n"
    b = report["bytes"]
    assert b["chunk_framing"] > 0 and b["stream"] == len(report["stream"].encode())
    assert 0 < b["event_lines"] < b["stream"]
