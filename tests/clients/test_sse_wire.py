"""The lean SSE wire: the field grammar, chunked decoding, and the HTTP head."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from clients.retry import is_retryable
from clients.sse_wire import (
    ChunkedDecoder,
    Message,
    SSEParser,
    parse_head,
    request_bytes,
    stream_messages,
)
from feed.exceptions import FatalTransportError
from feed.frames import http_chunk

STREAM = (
    b"\xef\xbb\xbfretry: 1500\r\n\r\n"
    b": keep-alive\n\n"
    b'event: ready\ndata: {"cursor": 3}\nid: 3\n\n'
    b"data: line one\rdata:line two\r\n\r\n"
    b"id: bad\0id\nevent: x\n\n"  # no data: nothing dispatched, the NUL id is ignored
    b'data: {"seq": 4}\nid: 4\n\n'
)


def _parse(chunks: list[bytes]) -> list[tuple[str, bytes, bytes | None, int | None]]:
    parser = SSEParser()
    return [(m.event, m.data, m.id, m.retry) for c in chunks for m in parser.feed(c)]


EXPECTED = [
    ("ready", b'{"cursor": 3}', b"3", None),
    ("message", b"line one\nline two", b"3", None),
    ("message", b'{"seq": 4}', b"4", None),
]


def test_whole_stream_parses_per_the_grammar() -> None:
    """BOM, CR/LF/CRLF line ends, comments, multi-line data, ignored NUL ids."""
    assert _parse([STREAM]) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_any_split_point_gives_the_same_messages(cut: int) -> None:
    """A read boundary anywhere (inside CRLF, inside the BOM's line) changes nothing."""
    assert _parse([STREAM[:cut], STREAM[cut:]]) == EXPECTED


def test_retry_is_reported_with_its_message() -> None:
    """``retry:`` travels with the message it came with."""
    assert _parse([b"retry: 250\ndata: x\n\n"]) == [("message", b"x", None, 250)]


def test_endless_line_is_refused() -> None:
    """A peer that never ends a line cannot grow the buffer without bound."""
    parser = SSEParser()
    with pytest.raises(ValueError, match="longer than"):
        for _ in range(20):
            parser.feed(b"x" * 65536)


BODY = b"4\r\nWiki\r\n7;ext=1\r\npedia i\r\nB\r\nn \r\nchunks.\r\n0\r\n\r\n"


@pytest.mark.parametrize("step", [1, 2, 3, 7, len(BODY)])
def test_chunked_decoding_at_any_read_size(step: int) -> None:
    """RFC 9112's example body, fed in pieces of ``step`` bytes; extensions ignored."""
    dec = ChunkedDecoder()
    out = b"".join(dec.feed(BODY[i : i + step]) for i in range(0, len(BODY), step))
    assert out == b"Wikipedia in \r\nchunks." and dec.done


@pytest.mark.parametrize("bad", [b"zz\r\nab\r\n", b"2\r\nabXX", b"9" * 2000])
def test_malformed_chunking_is_an_error(bad: bytes) -> None:
    """A bad size, a missing CRLF after data, or an endless size line raise ValueError."""
    with pytest.raises(ValueError):
        ChunkedDecoder().feed(bad)


def test_head_and_request() -> None:
    """The status line and headers parse; the request carries the query and headers."""
    head = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n")
    assert head.status == 200 and head.headers["transfer-encoding"] == "chunked"
    with pytest.raises(ValueError):
        parse_head(b"SSH-2.0-OpenSSH\r\n\r\n")
    raw = request_bytes("http://127.0.0.1:8000", {"topic": "t x"}, {"Last-Event-ID": "7"})
    assert raw.startswith(b"GET /sse?topic=t+x HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n")
    assert b"\r\nLast-Event-ID: 7\r\n" in raw and raw.endswith(b"\r\n\r\n")


async def _one_shot_server(answer: bytes) -> tuple[asyncio.Server, str]:
    """A real loopback server that sends ``answer`` to each connection and then goes silent."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            await reader.read()  # hold the socket open until the client leaves
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _drain(url: str, timeout_s: float) -> list[Message]:
    got: list[Message] = []
    async with contextlib.aclosing(stream_messages(url, {"topic": "t"}, {}, timeout_s, None)) as s:
        async for m in s:
            got.append(m)
    return got


async def test_silent_stream_times_out() -> None:
    """Headers, one event, then silence: TimeoutError after read_timeout (not a hang)."""
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    server, url = await _one_shot_server(head + http_chunk(b"data: 1\n\n"))
    async with server:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_drain(url, 0.2), 10)


@pytest.mark.parametrize(("status", "fatal"), [(401, True), (429, False), (503, False)])
async def test_error_status_is_fatal_only_for_client_errors(status: int, fatal: bool) -> None:
    """4xx (but 408/425/429) is FatalTransportError; the rest may be retried."""
    answer = b"HTTP/1.1 %d X\r\ncontent-length: 4\r\n\r\nnope" % status
    server, url = await _one_shot_server(answer)
    async with server:
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(_drain(url, 5), 10)
    assert isinstance(info.value, FatalTransportError) is fatal
    assert is_retryable(info.value) is not fatal
