"""A whole answer in one write: the head of an answer with a Content-Length waits for its body
(servers/fastpath/http_protocol.OneWrite), and every other answer is written as before."""

from __future__ import annotations

import socket

from experiments import sockstats
from feed.wire.http1 import Head, get_request, request_head, split_head
from servers.launch import ServerThread


def _answer(sock: socket.socket, body: bool = True) -> Head:
    """One whole answer off a keep-alive connection: the head, then Content-Length bytes."""
    data = b""
    while (split := split_head(data)) is None:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, rest = split
    want = int(head.headers["content-length"]) if body else 0
    while len(rest) < want:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    assert len(rest) == want or not body, (head, rest)  # a stream's first bytes may follow
    return head


def test_poll_answers_arrive_as_one_segment_each(live: ServerThread) -> None:
    """Twenty keep-alive poll answers, one TCP segment each (uvicorn alone writes two: the head,
    then the body), counted by the kernel on the client's socket."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
        before = sockstats.snapshot(live.port)[s.getsockname()[1]]
        for _ in range(20):
            s.sendall(get_request("x", "/poll?topic=t"))
            assert _answer(s).status == 200
        after = sockstats.snapshot(live.port)[s.getsockname()[1]]
    assert after[2] - before[2] == 20


def test_head_and_streams_are_not_held(live: ServerThread) -> None:
    """A HEAD answer (a head, no body write after it) and a stream's head (no Content-Length;
    its first event may come much later) go out at once; the connection serves on after HEAD."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
        s.sendall(request_head("HEAD", "/poll?topic=t", "x"))
        assert _answer(s, body=False).status == 200
        s.sendall(get_request("x", "/poll?topic=t"))
        assert _answer(s).status == 200
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
        s.sendall(get_request("x", "/sse?topic=t", {"Accept": "text/event-stream"}))
        # Nothing is published: only the head can arrive.
        assert _answer(s, body=False).status == 200
