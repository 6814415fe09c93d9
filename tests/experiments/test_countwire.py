"""The counting wire (flat-out cells): exact counts from whole reads, however the bytes split."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from experiments.countwire import (
    Batcher,
    SSECounter,
    StreamCounter,
    Tally,
    Window,
    WSCounter,
    open_counter,
    result,
)
from feed.codec import encode_event
from feed.settings import Settings
from feed.wire.http1 import LAST_CHUNK, encode_chunk, response_head
from feed.wire.ws import BINARY, CLOSE, PING, TEXT, accept_key, decode_frame, encode_frame
from servers.launch import ServerThread
from tests.support import async_wait_until, each_sse_impl

URL = "http://127.0.0.1:9"


class Recorder:
    """Stands in for the transport where the point is how bytes split, not the socket."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False
        self.paused = 0

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.aborted


def open_window() -> Window:
    win = Window(0)
    win.t0, win.t1, win.open = 0, 2**62, True
    return win


def frame(payload: bytes, opcode: int = TEXT, fin: bool = True) -> bytes:
    """A server frame (unmasked)."""
    return encode_frame(opcode, payload, fin=fin)


def event(seq: int, size: int = 20) -> bytes:
    return encode_event("t", seq, 1_000 + seq, "x" * size).json


def ws_counter(tally: Tally, win: Window) -> tuple[WSCounter, Recorder]:
    counter = WSCounter(URL, "t", tally, win)
    rec = Recorder()
    counter.connection_made(rec)  # type: ignore[arg-type]
    return counter, rec


def ws_head(counter: WSCounter) -> bytes:
    headers = {"Upgrade": "websocket", "Connection": "Upgrade"}
    accept = {"Sec-WebSocket-Accept": accept_key(counter.key)}
    return response_head(101, "Switching Protocols", headers | accept)


def unmask(data: bytes) -> tuple[int, bytes]:
    got = decode_frame(data)
    assert got is not None and got[0].masked, "client frames are masked"
    return got[0].raw[0], got[0].payload


def feed(counter: Any, data: bytes, cuts: list[int]) -> None:
    edges = [0, *cuts, len(data)]
    for a, b in zip(edges, edges[1:], strict=False):
        counter.data_received(data[a:b])


def ws_stream() -> bytes:
    """Ready, events 1-3 (3 above 125 bytes), an app ping, a protocol ping, events 4-5."""
    parts = [frame(b'{"type":"ready","topic":"t","cursor":0}')]
    parts += [frame(event(1)), frame(event(2)), frame(event(3, size=300))]
    parts += [frame(b'{"type":"ping","id":7}'), frame(b"hb", PING)]
    parts += [frame(event(4)), frame(event(5))]
    return b"".join(parts)


async def test_ws_counts_the_same_however_the_reads_split():
    """Every split point of the stream (frame headers too), and one byte per read."""
    stream = ws_stream()
    for cuts in [[i] for i in range(1, len(stream))] + [list(range(1, len(stream)))]:
        tally, win = Tally(), open_window()
        counter, rec = ws_counter(tally, win)
        feed(counter, ws_head(counter) + stream, [len(ws_head(counter)) + c for c in cuts])
        assert (tally.errors, tally.cursor, tally.seen, tally.last_seq) == ([], 0, 5, 5), cuts
        assert (tally.first, tally.last, tally.duplicates, tally.pings) == (1, 5, 0, 2)
        assert tally.nbytes == sum(len(event(i)) for i in (1, 2, 4, 5)) + len(event(3, 300))
        assert sorted(win.ts) == [1_001, 1_002, 1_003, 1_004, 1_005]
        assert sum(win.counts) == 5
        replies = [unmask(w) for w in rec.written[1:]]
        assert replies == [(0x81, b'{"type":"pong","id":7}'), (0x8A, b"hb")]


async def test_duplicates_and_gaps_are_counted_not_hidden():
    """Seqs 1 2 2 3 5: one duplicate dropped, one event lost in the window."""
    tally, win = Tally(), open_window()
    counter, _ = ws_counter(tally, win)
    body = b"".join(frame(event(s)) for s in (1, 2, 2, 3, 5))
    counter.data_received(ws_head(counter) + body)
    out = result([tally], win)
    assert (out["delivered"], out["duplicates"], out["lost"], out["errors"]) == (4, 1, 1, [])
    assert win.ts == [1_001, 1_002, 1_003, 1_005]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (frame(b"\x03\xf5overflow", CLOSE), "closed by the server: 1013 overflow"),
        (encode_frame(TEXT, b"hello", mask_key=b"abcd"), "masked frame from the server"),
        (frame(b'{"topic":', fin=False), "fragmented frame"),
        (frame(b"\x00\x01", BINARY), "unexpected opcode 2"),
        (frame(b'{"weird":1}'), "unexpected text frame"),
        # Only the header of a 1 TiB frame, by hand: no encoder should be asked for the payload.
        (b"\x81\x7f" + (1 << 40).to_bytes(8), "frame of 1099511627776 bytes"),
    ],
)
async def test_ws_protocol_errors_end_the_connection_with_a_reason(body: bytes, error: str):
    tally, win = Tally(), open_window()
    counter, rec = ws_counter(tally, win)
    counter.data_received(ws_head(counter) + frame(event(1)) + body)
    assert tally.seen == 1 and rec.aborted
    assert len(tally.errors) == 1 and error in tally.errors[0], tally.errors


async def test_ws_handshake_is_checked():
    tally, win = Tally(), open_window()
    counter, rec = ws_counter(tally, win)
    counter.data_received(response_head(101, "OK", {"Sec-WebSocket-Accept": "nope"}))
    assert rec.aborted and "bad Sec-WebSocket-Accept" in tally.errors[0]
    tally = Tally()
    counter, rec = ws_counter(tally, open_window())
    counter.data_received(response_head(403, "Forbidden", {"content-length": "0"}))
    assert rec.aborted and "HTTP 403" in tally.errors[0]


def sse_stream(sep: bytes) -> bytes:
    """A chunked body: ready, a gap, events 1-4, a comment; ``sep`` ends each line."""
    msgs = [
        b": hello" + sep + sep,
        b"event: gap" + sep + b'data: {"type":"gap","last_seq":0}' + sep + sep,
        b"id: 0" + sep + b"event: ready" + sep + b'data: {"type":"ready","cursor":0}' + sep + sep,
    ]
    msgs += [b"id: %d%sdata: %s%s%s" % (s, sep, event(s), sep, sep) for s in (1, 2, 3, 4)]
    msgs.append(b": ping" + sep + sep)
    return b"".join(map(encode_chunk, msgs))


@pytest.mark.parametrize("sep", [b"\n", b"\r\n"])
async def test_sse_counts_the_same_however_the_reads_split(sep: bytes):
    fields = {"content-type": "text/event-stream", "transfer-encoding": "chunked"}
    head = response_head(200, "OK", fields)
    stream = sse_stream(sep)
    for cuts in [[i] for i in range(1, len(stream))] + [list(range(1, len(stream), 3))]:
        tally, win = Tally(), open_window()
        counter = SSECounter(URL, "t", tally, win)
        counter.connection_made(Recorder())  # type: ignore[arg-type]
        feed(counter, head + stream, [len(head) + c for c in cuts])
        assert (tally.errors, tally.cursor, tally.seen, tally.last_seq) == ([], 0, 4, 4), cuts
        assert tally.gaps == 1 and tally.nbytes == sum(len(event(s)) for s in (1, 2, 3, 4))


async def test_sse_end_of_stream_is_an_error():
    tally = Tally()
    counter = SSECounter(URL, "t", tally, open_window())
    counter.connection_made(Recorder())  # type: ignore[arg-type]
    counter.data_received(response_head(200, "OK", {"transfer-encoding": "chunked"}) + LAST_CHUNK)
    assert "the server ended the stream" in tally.errors[0]


async def test_ndjson_counts_the_same_however_the_reads_split():
    """/stream lines: gap, ready, four events and a heartbeat, cut at every byte."""
    fields = {"content-type": "application/x-ndjson", "transfer-encoding": "chunked"}
    head = response_head(200, "OK", fields)
    lines = [b'{"type":"gap","last_seq":0}', b'{"type":"ready","topic":"t","cursor":0}']
    lines += [event(s) for s in (1, 2, 3, 4)] + [b'{"type":"heartbeat"}']
    stream = b"".join(encode_chunk(line + b"\n") for line in lines)
    for cuts in [[i] for i in range(1, len(stream))] + [list(range(1, len(stream), 3))]:
        tally, win = Tally(), open_window()
        counter = StreamCounter(URL, "t", tally, win)
        counter.connection_made(Recorder())  # type: ignore[arg-type]
        feed(counter, head + stream, [len(head) + c for c in cuts])
        assert (tally.errors, tally.cursor, tally.seen, tally.last_seq) == ([], 0, 4, 4), cuts
        assert tally.gaps == 1 and tally.nbytes == sum(len(event(s)) for s in (1, 2, 3, 4))


async def test_batcher_holds_each_socket_until_its_interval():
    batcher = Batcher(0.01)
    recs = [Recorder(), Recorder()]
    for rec in recs:
        batcher.hold(rec)  # type: ignore[arg-type]
    assert len(batcher.held) == 2 and batcher.timer is not None
    await async_wait_until(lambda: not batcher.held, 5, "the hold to end")
    assert batcher.timer is None and all(r.paused == 1 for r in recs)


@pytest.mark.parametrize(("transport", "sse_impl"), each_sse_impl(["ws", "sse", "stream"]))
async def test_counts_every_event_a_real_server_sends(transport: str, serve: Any, sse_impl: str):
    """Real uvicorn: three subscribers per wire, 300 events, a heartbeat every 20 ms answered."""
    settings = Settings.from_env(
        {}, ticker_rate=0, sse_impl=sse_impl, ws_ping_interval_s=0.02, ws_ping_timeout_s=0.5
    )
    live: ServerThread = serve(settings)
    win = Window(0, Batcher(0.03))
    win.t0, win.t1, win.open = 0, 2**62, True
    tallies = [Tally() for _ in range(3)]
    counters = [await open_counter(transport, live.url, "t", t, win) for t in tallies]
    await async_wait_until(lambda: all(t.cursor is not None for t in tallies), 10, "ready")
    async with httpx.AsyncClient(trust_env=False) as http:
        for i in range(300):
            r = await http.post(f"{live.url}/publish", params={"topic": "t"}, json={"i": i})
            assert r.status_code == 200, r.text
    await async_wait_until(lambda: all(t.last_seq == 300 for t in tallies), 10, "all events")
    if transport == "ws":
        await async_wait_until(lambda: all(t.pings >= 3 for t in tallies), 10, "3 heartbeats")
    for counter in counters:
        counter.close()
    out = result(tallies, win)
    assert (out["delivered"], out["lost"], out["duplicates"], out["errors"]) == (900, 0, 0, [])
    assert {(t.first, t.last) for t in tallies} == {(1, 300)}
    body = orjson.dumps({"i": 0})
    assert out["event_bytes"] > 900 * len(body)
    assert len(win.ts) == 900 and sum(win.counts) == 900
    # The hold batches: far fewer reads than events (one read per event without it).
    assert len(win.reads) < 900 / 2, len(win.reads)


async def test_unknown_transport_is_refused():
    with pytest.raises(ValueError, match="no counting wire for 'gopher'"):
        await open_counter("gopher", URL, "t", Tally(), open_window())
