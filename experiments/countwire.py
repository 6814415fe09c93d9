"""Counting subscribers for flat-out cells: WebSocket, SSE and NDJSON streams, parsed per read,
not per event.

Flat out, a process of the lab's clients (``clients/``: one decoded event object, one async
generator step and one bookkeeping call per event) spends 3.3-4.0x the server's CPU per event
(docs/performance.md), so on a 2-core machine the generators, not the server, set the figure.
These subscribers work per read: WebSocket frame headers are walked in one short loop (not
:func:`feed.wire.ws.decode_frame`: an object per frame would cost more than the count), event
fields are pulled out of the whole read by one regex, and the seqs are checked against the
expected run by one list comparison. With ``hold_ms`` each socket is read at most once per hold
(:class:`Batcher`), so a read carries many events instead of one. They keep every figure
``experiments.loadgen`` reports: latency per event (the server's ``ts_ns`` against the read's
arrival), exact lost and duplicate counts, event bytes and the first seq. They neither reconnect
nor resume: a dropped or refused connection is an error, and a cell with errors does not count.

``python -m experiments.loadgen SPEC`` with ``spec["client"]`` ``{"wire": "count"}`` (and
optionally ``"hold_ms"``) runs these; ``transport`` is ``ws``, ``sse`` or ``stream`` (or a poll).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import numpy as np

from clients.explain.handshake import ws_target
from feed.codec import control
from feed.wire.contract import SUBPROTOCOL_JSON
from feed.wire.http1 import (
    ChunkedDecoder,
    Head,
    split_head,
    sse_request_for,
    stream_request_for,
)
from feed.wire.ws import accept_key, client_frame, new_ws_key, upgrade_request

MAX_FRAME = 1 << 20
# An event is {"topic":..,"seq":N,"ts_ns":T,"data":..} (feed/codec.py; the Node baseline writes
# the same bytes). Inside a JSON string a quote is escaped, so `{"topic":"` starts an event.
EVENT = re.compile(rb'\{"topic":"[^"\\]*","seq":(\d+),"ts_ns":(\d+),')
# SSE: the whole data line, for the event's byte count.
SSE_EVENT = re.compile(rb'data: ?(\{"topic":"[^"\\]*","seq":(\d+),"ts_ns":(\d+),[^\r\n]*)')
# NDJSON (/stream): an event is a whole line.
LINE_EVENT = re.compile(rb'^(\{"topic":"[^"\\]*","seq":(\d+),"ts_ns":(\d+),[^\n]*)', re.MULTILINE)
READY = re.compile(rb'\{"type":"ready"[^}]*?"cursor":(\d+)')
PING = re.compile(rb'\{"type":"ping","id":(\d+|null)\}')


# Stamps kept per generator process: a step's warm-up and window at the ladder's highest rate are
# a few thousand events; the cap only bounds a run that is much longer than a step.
MAX_STAMPS = 100_000


@dataclass
class Tally:
    """One subscriber's counts; ``last_seq`` is the stream's, the rest are the window's."""

    cursor: int | None = None
    first_any: int | None = None
    last_seq: int | None = None
    first: int | None = None
    last: int | None = None
    seen: int = 0
    nbytes: int = 0
    seq_digits: int = 0
    duplicates: int = 0
    gaps: int = 0
    pings: int = 0  # heartbeats answered (app-level and protocol pings)
    connections: int = 0
    requests: int = 0  # polling only: answers in the window, and how many were empty
    empty: int = 0
    errors: list[str] = field(default_factory=list)


class Batcher:
    """Reads each socket at most once per ``interval_s``, so one read carries many events.

    A subscriber that reads as soon as anything arrives pays a wake-up, a ``recv`` and a
    Python callback per event when it keeps up with the server; flat out that, not the
    parsing, is most of its CPU. Holding a socket for a few milliseconds leaves the events in
    the kernel's receive buffer (at 2,000 events/s of ~130 bytes, 10 ms is ~2.6 KB against a
    128 KiB ``tcp_rmem`` default here), so the server's sends proceed as before; the recorded
    latency includes the hold.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.loop = asyncio.get_running_loop()
        self.held: list[asyncio.Transport] = []
        self.timer: asyncio.TimerHandle | None = None

    def hold(self, transport: asyncio.Transport) -> None:
        transport.pause_reading()
        self.held.append(transport)
        if self.timer is None:
            self.timer = self.loop.call_later(self.interval_s, self._release)

    def _release(self) -> None:
        self.timer = None
        held, self.held = self.held, []
        for transport in held:
            if not transport.is_closing():
                transport.resume_reading()


class Window:
    """The shared window and latency samples: per read its time and event count, per event ts."""

    def __init__(self, margin_ns: int, batcher: Batcher | None = None) -> None:
        self.margin_ns = margin_ns
        self.batcher = batcher
        self.t0 = self.t1 = 0
        self.open = False
        self.reads: list[int] = []
        self.counts: list[int] = []
        self.ts: list[int] = []
        self.responses: list[tuple[int, int]] = []  # polling: (done_ns, empty) per answer
        # One subscriber's (seq -> (ts_ns, arrival)) from its first event on: the publisher's
        # timing against its own schedule (schedule_figures), at one dict entry per event.
        self.witness: Tally | None = None
        self.stamps: dict[int, tuple[int, int]] = {}

    def answered(self, tally: Tally, now: int, empty: bool) -> None:
        """Account one polling answer (loadgen's ``responses`` rows and window counters)."""
        if not self.open:
            return
        if self.t0 - self.margin_ns <= now < self.t1 + self.margin_ns:
            self.responses.append((now, int(empty)))
        if self.t0 <= now < self.t1:
            tally.requests += 1
            tally.empty += empty

    def record(
        self, tally: Tally, now: int, seqs: list[bytes], tss: list[bytes], nbytes: int
    ) -> None:
        """Account one read's events (stream order, ``now`` = arrival) to ``tally``."""
        ints = list(map(int, seqs))
        if tally.first_any is None:
            tally.first_any = ints[0]
        counted = self.open and self.t0 <= now < self.t1
        last = tally.last_seq
        if last is None or ints != list(range(last + 1, last + 1 + len(ints))):
            # Slow path (a duplicate, a gap or the first read): one event at a time.
            by_seq = dict(zip(ints, tss, strict=True))
            kept = []
            for seq in ints:
                if last is not None and seq <= last:
                    tally.duplicates += counted
                    continue
                kept.append(seq)
                last = seq
            if not kept:
                return
            ints, tss = kept, [by_seq[q] for q in kept]
        tally.last_seq = ints[-1]
        if self.witness is None:
            self.witness = tally
        if tally is self.witness and len(self.stamps) < MAX_STAMPS:
            for seq, ts in zip(ints, tss, strict=True):
                self.stamps[seq] = (int(ts), now)
        if not self.open:
            return
        if self.t0 - self.margin_ns <= now < self.t1 + self.margin_ns:
            self.reads.append(now)
            self.counts.append(len(ints))
            self.ts.extend(map(int, tss))
        if counted:
            if tally.first is None:
                tally.first = ints[0]
            tally.last = ints[-1]
            tally.seen += len(ints)
            tally.nbytes += nbytes
            tally.seq_digits += sum(map(len, seqs))


class Counter(asyncio.Protocol):
    """Shared plumbing: the HTTP head, then ``_body`` per read; errors end the connection."""

    def __init__(self, request: bytes, tally: Tally, win: Window) -> None:
        self.request = request
        self.tally = tally
        self.win = win
        self.transport: asyncio.Transport | None = None
        self.head: bytes | None = b""
        self.ended = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.ended:
            return
        try:
            if self.head is not None:
                self.head += data
                got = split_head(self.head)
                if got is None:
                    return
                head, data = got
                self.head = None
                self._opened(head)
                self.tally.connections += 1
            if data:
                self._body(data)
            if self.win.batcher is not None and self.transport is not None:
                self.win.batcher.hold(self.transport)
        except Exception as exc:  # noqa: BLE001 - the reason goes into the result
            self.fail(f"{type(exc).__name__}: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(f"connection lost: {exc or 'closed by the server'}")

    def fail(self, reason: str) -> None:
        """Record why the connection ended (the first reason only) and drop it."""
        if not self.ended:
            self.tally.errors.append(reason)
        self.close()

    def close(self) -> None:
        self.ended = True
        if self.transport is not None:
            self.transport.abort()

    def _opened(self, head: Head) -> None:
        raise NotImplementedError

    def _body(self, data: bytes) -> None:
        raise NotImplementedError


class WSCounter(Counter):
    """RFC 6455 client: server frames are unmasked, ours (pongs) masked."""

    def __init__(self, url: str, topic: str, tally: Tally, win: Window) -> None:
        self.key = new_ws_key()
        protocol = {"Sec-WebSocket-Protocol": SUBPROTOCOL_JSON}
        request = upgrade_request(urlsplit(url).netloc, ws_target(topic), self.key, protocol)
        super().__init__(request, tally, win)
        self.buf = b""

    def _opened(self, head: Head) -> None:
        if head.status != 101:
            raise ConnectionError(f"HTTP {head.status} instead of 101")
        if head.headers.get("sec-websocket-accept") != accept_key(self.key):
            raise ConnectionError("bad Sec-WebSocket-Accept")

    def _body(self, data: bytes) -> None:
        now = time.time_ns()
        buf = self.buf + data if self.buf else data
        n, pos, events, nbytes = len(buf), 0, 0, 0
        bad = ""  # a frame that ends the connection, after what came before it is counted
        control: list[tuple[int, bytes]] = []
        while n - pos >= 2:
            b1 = buf[pos + 1]
            if b1 < 126:
                start, end = pos + 2, pos + 2 + b1
            elif b1 == 126:
                if n - pos < 4:
                    break
                start = pos + 4
                end = start + int.from_bytes(buf[pos + 2 : pos + 4])
            elif b1 == 127:
                if n - pos < 10:
                    break
                start = pos + 10
                end = start + int.from_bytes(buf[pos + 2 : pos + 10])
                if end - start > MAX_FRAME:
                    bad = f"frame of {end - start} bytes from the server"
                    break
            else:
                bad = "masked frame from the server"
                break
            if end > n:
                break
            if buf[pos] == 0x81 and end - start > 3 and buf[start + 3] == 0x6F:  # {"to(pic"
                events += 1
                nbytes += end - start
            else:
                control.append((buf[pos], buf[start:end]))
            pos = end
        self.buf = buf[pos:]
        if events:
            found = EVENT.findall(buf, 0, pos)
            if len(found) != events:
                raise ValueError(f"{events} event frames but {len(found)} events parsed")
            seqs, tss = zip(*found, strict=True)
            self.win.record(self.tally, now, list(seqs), list(tss), nbytes)
        for first, payload in control:
            self._control(first, payload)
        if bad:
            raise ValueError(bad)

    def _control(self, first: int, payload: bytes) -> None:
        opcode = first & 0x0F
        if first & 0x80 == 0 or opcode == 0:
            raise ValueError("fragmented frame: not expected from this server")
        if opcode == 0x8:
            code = int.from_bytes(payload[:2]) if len(payload) >= 2 else None
            reason = payload[2:].decode(errors="replace")
            raise ConnectionError(f"closed by the server: {code} {reason}".rstrip())
        if opcode == 0x9:
            self.tally.pings += 1
            self._send(0xA, payload)
        elif opcode == 0x1:
            if ready := READY.match(payload):
                self.tally.cursor = int(ready.group(1))
            elif payload.startswith(b'{"type":"gap"'):
                self.tally.gaps += 1
            elif ping := PING.match(payload):
                ident = None if ping.group(1) == b"null" else int(ping.group(1))
                self.tally.pings += 1
                self._send(0x1, control("pong", id=ident))
            elif not payload.startswith(b'{"type":'):
                raise ValueError(f"unexpected text frame {payload[:60]!r}")
        elif opcode != 0xA:
            raise ValueError(f"unexpected opcode {opcode}")

    def _send(self, opcode: int, payload: bytes) -> None:
        if len(payload) > 125:
            raise ValueError("control reply too long")
        assert self.transport is not None
        self.transport.write(client_frame(opcode, payload))


class SSECounter(Counter):
    """``GET /sse``: chunked body, messages split at blank lines (LF or CRLF)."""

    def __init__(self, url: str, topic: str, tally: Tally, win: Window) -> None:
        super().__init__(sse_request_for(url, {"topic": topic}, {}), tally, win)
        self.decoder: ChunkedDecoder | None = None
        self.buf = b""

    def _opened(self, head: Head) -> None:
        if head.status != 200:
            raise ConnectionError(f"HTTP {head.status}")
        if head.headers.get("transfer-encoding", "").lower() == "chunked":
            self.decoder = ChunkedDecoder()

    def _body(self, data: bytes) -> None:
        now = time.time_ns()
        if self.decoder is not None:
            data = self.decoder.feed(data)
            if self.decoder.done:
                raise ConnectionError("the server ended the stream")
        buf = self.buf + data if self.buf else data
        # Complete messages only: up to the last blank line.
        end = 0
        for blank in (b"\n\n", b"\r\n\r\n"):
            at = buf.rfind(blank)
            if at >= 0:
                end = max(end, at + len(blank))
        done, self.buf = buf[:end], buf[end:]
        if not done:
            return
        found = SSE_EVENT.findall(done)
        if found:
            bodies, seqs, tss = zip(*found, strict=True)
            self.win.record(self.tally, now, list(seqs), list(tss), sum(map(len, bodies)))
        if self.tally.cursor is None and (ready := READY.search(done)):
            self.tally.cursor = int(ready.group(1))
        self.tally.gaps += done.count(b'{"type":"gap"')


class StreamCounter(SSECounter):
    """``GET /stream``: chunked body, one JSON object per line."""

    def __init__(self, url: str, topic: str, tally: Tally, win: Window) -> None:
        Counter.__init__(self, stream_request_for(url, {"topic": topic}, {}), tally, win)
        self.decoder = None
        self.buf = b""

    def _body(self, data: bytes) -> None:
        now = time.time_ns()
        if self.decoder is not None:
            data = self.decoder.feed(data)
            if self.decoder.done:
                raise ConnectionError("the server ended the stream")
        buf = self.buf + data if self.buf else data
        end = buf.rfind(b"\n") + 1  # complete lines only
        done, self.buf = buf[:end], buf[end:]
        if not done:
            return
        found = LINE_EVENT.findall(done)
        if found:
            bodies, seqs, tss = zip(*found, strict=True)
            self.win.record(self.tally, now, list(seqs), list(tss), sum(map(len, bodies)))
        if self.tally.cursor is None and (ready := READY.search(done)):
            self.tally.cursor = int(ready.group(1))
        self.tally.gaps += done.count(b'{"type":"gap"')


Factory = Callable[[str, str, Tally, Window], Counter]
COUNTERS: dict[str, Factory] = {"ws": WSCounter, "sse": SSECounter, "stream": StreamCounter}
# Connects in flight at once per process: a burst of thousands of SYNs overflows the server's
# accept backlog and the retransmits (1 s, 3 s, ...) read as slow handshakes.
CONNECT_CONCURRENCY = 128
# ``"source": "auto"``: each generator process binds its own address in 127.40.0.1-127.49.255.254,
# picked from its pid, so ephemeral ports (~28k per source address here) and TIME_WAIT (60 s)
# of one process or one run do not starve the next.
AUTO_SOURCE_NETS = 10


def auto_source(pid: int) -> str:
    """The per-process loopback source address for ``pid``."""
    q = pid % (AUTO_SOURCE_NETS * 256 * 254)
    return f"127.{40 + q // (256 * 254)}.{q // 254 % 256}.{q % 254 + 1}"


def _factory(transport: str, client: dict[str, Any]) -> Factory:
    if transport in COUNTERS:
        return COUNTERS[transport]
    if transport in ("poll", "long-poll"):
        from experiments.capacity.pollwire import poll_factory

        return poll_factory(transport, client)
    have = ", ".join([*COUNTERS, "poll", "long-poll"])
    raise ValueError(f"no counting wire for {transport!r} (have: {have})")


async def open_counter(
    transport: str,
    url: str,
    topic: str,
    tally: Tally,
    win: Window,
    client: dict[str, Any] | None = None,
) -> Counter:
    """Connect one counting subscriber (``client["source"]``: bind this local address first)."""
    client = client or {}
    factory = _factory(transport, client)
    split = urlsplit(url)
    loop = asyncio.get_running_loop()
    source = client.get("source")
    if source == "auto":
        source = auto_source(os.getpid())
    _, proto = await loop.create_connection(
        lambda: factory(url, topic, tally, win),
        split.hostname or "127.0.0.1",
        split.port or 80,
        local_addr=(source, 0) if source else None,
    )
    return proto


def result(tallies: list[Tally], win: Window) -> dict[str, Any]:
    """The figures, with loadgen's keys."""
    firsts = [t.first_any for t in tallies if t.first_any is not None]
    return {
        "generator": "asyncio",
        "subscribers": len(tallies),
        "silent_subscribers": sum(1 for t in tallies if t.seen == 0),
        "delivered": sum(t.seen for t in tallies),
        "lost": sum(t.last - t.first + 1 - t.seen for t in tallies if t.first and t.last),
        "event_bytes": sum(t.nbytes for t in tallies),
        "seq_digits": sum(t.seq_digits for t in tallies),
        "errors": sorted({e for t in tallies for e in t.errors}),
        "first_seq_min": min(firsts, default=None),
        "first_seq_max": max(firsts, default=None),
        # Window deltas, as loadgen's: these subscribers connect once, before the window.
        "requests": sum(t.requests for t in tallies),
        "empty_responses": sum(t.empty for t in tallies),
        "duplicates": sum(t.duplicates for t in tallies),
        "reconnects": 0,
        "connections": 0,
        "gaps": sum(t.gaps for t in tallies),
        "stamps": [[seq, ts, now] for seq, (ts, now) in win.stamps.items()],
    }


async def run(spec: dict[str, Any]) -> None:
    """``experiments.loadgen``'s pipe protocol with counting subscribers (see its docstring)."""
    from experiments.loadgen import (
        MARGIN_NS,
        open_window,
        read_command,
        say,
        say_connected,
        start_cursor,
        wait_for,
    )

    hold_ms = float(spec.get("client", {}).get("hold_ms", 0))
    win = Window(MARGIN_NS, Batcher(hold_ms / 1000) if hold_ms > 0 else None)
    tallies = [Tally() for _ in range(spec["subscribers"])]
    idle = spec.get("idle", False)

    client = spec.get("client", {})
    gate = asyncio.Semaphore(int(client.get("connect_concurrency", CONNECT_CONCURRENCY)))

    async def connect(tally: Tally) -> Counter | None:
        try:
            async with gate, asyncio.timeout(10):
                return await open_counter(
                    spec["transport"], spec["url"], spec["topic"], tally, win, client
                )
        except Exception as exc:  # noqa: BLE001 - the reason goes into the result
            tally.errors.append(f"connect {type(exc).__name__}: {exc}")
            return None

    protos = [p for p in await asyncio.gather(*map(connect, tallies)) if p is not None]

    def ready(t: Tally) -> bool:
        if idle:
            return t.connections > 0
        t.cursor = start_cursor(t.cursor, t.first_any)
        return t.cursor is not None

    # Unlike the lab's clients these do not reconnect: one error is final, stop waiting.
    await wait_for(
        lambda: all(map(ready, tallies)) or any(t.errors for t in tallies),
        spec.get("connect_timeout_s", 30.0),
    )
    say_connected(
        sum(map(ready, tallies)),
        len(tallies),
        [t.cursor for t in tallies if t.cursor is not None],
        [e for t in tallies for e in t.errors],
    )
    try:
        if not await open_window(win):
            return
        await asyncio.sleep(max(0.0, (win.t1 + MARGIN_NS - time.time_ns()) / 1e9))
        win.open = False
        say({"result": result(tallies, win)})
        _save(spec["raw_path"], win)
        await read_command()
    finally:
        for p in protos:
            p.close()


def _save(raw_path: str, win: Window) -> None:
    recv = np.repeat(np.asarray(win.reads, dtype=np.int64), np.asarray(win.counts, dtype=np.int64))
    lat = recv - np.asarray(win.ts, dtype=np.int64)
    np.save(raw_path, np.stack([recv, lat], axis=1).reshape(-1, 2))
    responses = np.asarray(win.responses, dtype=np.int64).reshape(-1, 2)
    np.save(raw_path.removesuffix(".npy") + ".responses.npy", responses)
