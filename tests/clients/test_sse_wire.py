"""The lean SSE wire on a real socket (its parsing is tested in tests/feed/test_wire_*.py)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from clients.retry import is_retryable
from clients.sse_wire import stream_messages
from feed.exceptions import FatalTransportError
from feed.wire.http1 import END_OF_HEAD, encode_chunk, parse_request_head, response_head
from feed.wire.sse import Message, retry_block

seen: list = []  # request heads the one-shot server read


async def _one_shot_server(answer: bytes) -> tuple[asyncio.Server, str]:
    """A real loopback server that sends ``answer`` to each connection and then goes silent."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            seen.append(parse_request_head(await reader.readuntil(END_OF_HEAD)))
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
    head = response_head(200, "OK", {"transfer-encoding": "chunked"})
    server, url = await _one_shot_server(head + encode_chunk(b"data: 1\n\n"))
    async with server:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_drain(url, 0.2), 10)


async def test_retry_only_block_reaches_the_caller_and_the_request_is_an_event_source() -> None:
    """The server's first block (``retry:`` alone) is delivered, so SSEClient can honour it."""
    head = response_head(200, "OK", {"transfer-encoding": "chunked"})
    body = encode_chunk(retry_block(1234)) + encode_chunk(b"data: 1\n\n")
    server, url = await _one_shot_server(head + body)
    got: list[Message] = []
    async with server:
        messages = stream_messages(url, {"topic": "t"}, {"Last-Event-ID": "7"}, 5, None)
        async with contextlib.aclosing(messages) as s:
            async for m in s:
                got.append(m)
                if len(got) == 2:
                    break
    assert [(m.retry, m.data) for m in got] == [(1234, b""), (None, b"1")]
    request = seen[-1]
    assert request.target == "/sse?topic=t" and request.headers["accept"] == "text/event-stream"
    assert request.headers["last-event-id"] == "7"


@pytest.mark.parametrize(("status", "fatal"), [(401, True), (429, False), (503, False)])
async def test_error_status_is_fatal_only_for_client_errors(status: int, fatal: bool) -> None:
    """4xx (but 408/425/429) is FatalTransportError; the rest may be retried."""
    answer = response_head(status, "X", {"content-length": "4"}) + b"nope"
    server, url = await _one_shot_server(answer)
    async with server:
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(_drain(url, 5), 10)
    assert isinstance(info.value, FatalTransportError) is fatal
    assert is_retryable(info.value) is not fatal
