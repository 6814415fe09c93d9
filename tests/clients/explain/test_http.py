"""Handshake maths, response heads, chunked bodies and SSE line annotations."""

from __future__ import annotations

import base64

from websockets.utils import accept_key

from clients.explain.http import (
    RFC6455_SAMPLE_ACCEPT,
    RFC6455_SAMPLE_KEY,
    accept_steps,
    annotate_sse,
    dechunk,
    new_ws_key,
    split_head,
)


def test_rfc6455_sample_key_gives_the_rfc_accept():
    """dGhlIHNhbXBsZSBub25jZQ== gives s3pPLMBiTxaQ9kYGzzhZRbK+xOo= (RFC 6455 §1.3)."""
    steps = accept_steps(RFC6455_SAMPLE_KEY)
    assert steps["accept"] == RFC6455_SAMPLE_ACCEPT
    assert steps["sha1_hex"] == base64.b64decode(RFC6455_SAMPLE_ACCEPT).hex()
    assert base64.b64decode(RFC6455_SAMPLE_KEY) == b"the sample nonce"


def test_accept_matches_websockets_for_random_keys():
    """Our step-by-step accept equals websockets' accept_key for fresh random keys."""
    for _ in range(20):
        key = new_ws_key()
        assert len(base64.b64decode(key)) == 16
        assert accept_steps(key)["accept"] == accept_key(key)


def test_split_head_needs_the_blank_line():
    """A head is parsed only once it is complete; the body stays behind."""
    raw = b"HTTP/1.1 204 No Content\r\nPushlab-Cursor: 7\r\nA: 1\r\nA: 2\r\n\r\nrest"
    assert split_head(raw[:20]) is None
    head, rest = split_head(raw) or (None, b"")
    assert head is not None
    assert (head.status, head.headers["pushlab-cursor"], head.headers["a"]) == (204, "7", "1, 2")
    assert rest == b"rest"


def test_dechunk_counts_framing_and_waits_for_partial_chunks():
    """Chunk sizes are hex; framing bytes are counted; a partial chunk is not returned."""
    body = b"5\r\nhello\r\n1a\r\n" + b"x" * 26 + b"\r\n0\r\n\r\n"
    assert dechunk(body) == (b"hello" + b"x" * 26, 3 + 2 + 4 + 2 + 3 + 2, True)
    assert dechunk(body[:12]) == (b"hello", 5, False)
    assert dechunk(body[:20], partial=True) == (b"hello" + b"x" * 6, 9, False)


def test_annotate_sse_names_every_line():
    """id, event, data, retry, comments and blank lines are each recognised."""
    text = "retry: 1000\n\n: ping\n\nid: 3\nevent: ready\ndata: {}\n\n"
    kinds = [line["kind"] for line in annotate_sse(text)]
    assert kinds == ["retry", "blank", "comment", "blank", "id", "event", "data", "blank"]
    assert annotate_sse("id: 3\n")[0]["value"] == "3"


def test_annotate_sse_strips_exactly_one_leading_space():
    """WHATWG: one space after the colon goes; more spaces are data; CR alone ends a line."""
    lines = annotate_sse("data:  two\rdata:none\r\ndata: one\n")
    assert [(line["kind"], line["value"]) for line in lines] == [
        ("data", " two"),
        ("data", "none"),
        ("data", "one"),
    ]
