"""A load-client process holding many feed connections (``python -m experiments.ladder.holder``).

The connection ladder and the reconnect storm need thousands of sockets per process at the least
client CPU, so each connection is a counting subscriber of :mod:`experiments.countwire` (raw
socket, parsed per read; WebSocket, SSE and NDJSON streams) or its long poll
(:mod:`experiments.capacity.pollwire`), bound to the spec's source address (``source``:
ephemeral ports and TIME_WAIT are per source address, ~28k here).
With ``reconnect`` a connection that ends comes back after the project's backoff
(``clients.retry.RetryPolicy``, full jitter; ``jitter: false`` waits the un-jittered delays,
the thundering herd) and resumes from its last seq (WS, SSE and ``/stream`` ``?since=``, long poll
``since=``), on the same :class:`~experiments.countwire.Tally`, so lost and duplicated events
are counted across the outage.

Pipe protocol (one JSON line each way, like ``experiments.loadgen``):

- stdout ``{"connected": n, "of": N, "t_first_ns", "t_last_ns", "errors": [...],
  "error_counts": {reason: count}}`` once every connection has its answer head (or failed);
- stdin ``{"cmd": "status"}`` -> ``{"open": n, "opens": total, "errors": [...]}``;
  ``{"cmd": "mark"}`` -> ``{"marked": true}``: forget latency samples so far;
  ``{"cmd": "latency", "seq": S}`` -> ``{"got": slots at or past S, "lat_ns": [...]}``: the
  latencies of the events received since the mark (server ``ts_ns`` to the read's arrival);
  ``{"cmd": "storm", "since_ns": T}`` -> per slot the first open and the first event after ``T``,
  and the lost/duplicate/gap counts; ``{"cmd": "stop"}`` (or stdin closed) closes and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from clients.explain.handshake import ws_target
from clients.retry import RetryPolicy
from experiments.capacity.pollwire import LongPollCounter
from experiments.countwire import SSECounter, StreamCounter, Tally, Window, WSCounter
from experiments.loadgen import read_command, say
from feed.fdlimit import raise_nofile
from feed.wire.contract import SUBPROTOCOL_JSON
from feed.wire.http1 import Head, split_head, sse_request_for, stream_request_for
from feed.wire.ws import upgrade_request

CONNECT_TIMEOUT_S = 20.0
IN_FLIGHT = 256  # connects at once per process: bounded, so the server's accept queue keeps up
# Long polls wait this long (the server caps it at long_poll_max_timeout_s) before a 204.
LONG_POLL_WAIT_S = 30


@dataclass
class Slot:
    """One subscriber across its connections."""

    tally: Tally = field(default_factory=Tally)
    open: bool = False
    opens: list[int] = field(default_factory=list)  # time.time_ns() of each answer head
    resumed: list[int] = field(default_factory=list)  # first event after each open
    waiting: bool = False  # opened, no event yet
    delays: Iterator[float] | None = None
    reason: str = ""


class _Held:
    """Mixin: tell the slot when the connection opened, an event came, the connection ended."""

    slot: Slot
    holder: Holder
    tally: Tally
    ended: bool
    head: bytes | None
    transport: asyncio.Transport | None
    ok_status = 0  # the answer a stream opens with (101, 200); 0: not checked here

    def data_received(self, data: bytes) -> None:
        # The status alone does not say which guard refused (a 503 may be the server's cap of
        # pending heads, its open-file limit or the broker): the body's first words go into the
        # reason. A refusal is written in one piece, so its first read holds them.
        if self.ok_status and self.head is not None and not self.ended:
            with contextlib.suppress(ValueError):  # a bad head: the counter says so below
                got = split_head(self.head + data)
                if got is not None and got[0].status != self.ok_status:
                    said = got[1][:60].decode("latin-1", "replace").strip()
                    self.fail(f"HTTP {got[0].status}: {said}")
                    return
        super().data_received(data)  # type: ignore[misc]

    def _mark_open(self) -> None:
        self.slot.open, self.slot.waiting = True, True
        self.slot.opens.append(time.time_ns())
        self.slot.delays = None

    def _opened(self, head: Head) -> None:
        super()._opened(head)  # type: ignore[misc]
        self._mark_open()

    def _body(self, data: bytes) -> None:
        before = self.tally.last_seq
        super()._body(data)  # type: ignore[misc]
        if self.slot.waiting and self.tally.last_seq != before:
            self.slot.waiting = False
            self.slot.resumed.append(time.time_ns())

    def fail(self, reason: str) -> None:
        """The connection ended (once per connection, whatever reported it first)."""
        if self.ended:
            return
        self.ended = True
        self.slot.reason, self.slot.open = reason, False
        if self.transport is not None:
            self.transport.abort()
        self.holder.lost(self.slot)


def _since(holder: Holder, slot: Slot) -> int | None:
    """Where a (re)connection resumes: the slot's last seq, else the holder's start."""
    return slot.tally.last_seq if slot.tally.last_seq is not None else holder.since


class HeldWS(_Held, WSCounter):
    ok_status = 101

    def __init__(self, holder: Holder, slot: Slot) -> None:
        self.holder, self.slot = holder, slot
        super().__init__(holder.url, holder.topic, slot.tally, holder.win)
        if (since := _since(holder, slot)) is not None:
            self.request = upgrade_request(
                holder.netloc, ws_target(holder.topic, since), self.key,
                {"Sec-WebSocket-Protocol": SUBPROTOCOL_JSON},
            )  # fmt: skip


class HeldSSE(_Held, SSECounter):
    ok_status = 200
    request_for = staticmethod(sse_request_for)

    def __init__(self, holder: Holder, slot: Slot) -> None:
        self.holder, self.slot = holder, slot
        super().__init__(holder.url, holder.topic, slot.tally, holder.win)
        if (since := _since(holder, slot)) is not None:
            self.request = self.request_for(
                holder.url, {"topic": holder.topic, "since": str(since)}, {}
            )


class HeldStream(HeldSSE, StreamCounter):
    """``GET /stream``: SSE's held connection; only the request and the framing differ (the
    counter's line reader). It resumes by ``?since``, which the server takes as it takes the
    ``Pushlab-Cursor`` header."""

    request_for = staticmethod(stream_request_for)


class HeldLongPoll(_Held, LongPollCounter):
    """The capacity search's raw keep-alive long poll (one parked ``GET /long-poll`` at a time).

    "Open" is the moment the first request is written, not an answer head: a parked poll has no
    head until an event or the timeout, so the runner asks the server (``/healthz``) how many it
    holds. Without a resume point the first request is a short poll for the cursor.
    """

    def __init__(self, holder: Holder, slot: Slot) -> None:
        self.holder, self.slot = holder, slot
        options = {"wait_s": LONG_POLL_WAIT_S}
        super().__init__(holder.url, holder.topic, slot.tally, holder.win, options)
        if (since := _since(holder, slot)) is not None:
            self.cursor = since
            self.request = self._next_request()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._mark_open()

    def _opened(self, head: Head) -> None:
        LongPollCounter._opened(self, head)  # every answer has a head; the slot opened already


HELD: dict[str, type[Any]] = {
    "ws": HeldWS, "sse": HeldSSE, "stream": HeldStream, "long-poll": HeldLongPoll,
}  # fmt: skip


class Holder:
    """The slots of one process, their connects and reconnects."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.host, self.port = spec.get("host", "127.0.0.1"), int(spec["port"])
        self.netloc = f"{self.host}:{self.port}"
        self.url = f"http://{self.netloc}"
        self.topic = spec.get("topic", "ticks")
        self.since: int | None = spec.get("since")
        self.source = spec.get("source", "127.0.0.1")
        self.reconnect = bool(spec.get("reconnect", False))
        self.jitter = bool(spec.get("jitter", True))
        retry = spec.get("retry", {})
        self.policy = RetryPolicy(base_s=retry.get("base_s", 0.1), cap_s=retry.get("cap_s", 10.0))
        self.factory = HELD[spec["transport"]]
        self.win = Window(0)
        self.win.open, self.win.t0, self.win.t1 = True, 0, 1 << 62
        self.slots = [Slot() for _ in range(int(spec["n"]))]
        self.gate = asyncio.Semaphore(int(spec.get("in_flight", IN_FLIGHT)))
        self.errors: list[str] = []
        self.attempts = 0
        self.pending: set[asyncio.Task[None]] = set()

    async def connect(self, slot: Slot, gated: bool = True) -> bool:
        """One connection for ``slot``; False (reason kept) when it could not be made.

        The first connects go through :attr:`gate` (a bounded ramp, for the handshake rate);
        reconnects do not: each client knocks when its own backoff says, as real ones do.
        """
        loop = asyncio.get_running_loop()
        self.attempts += 1
        try:
            # The timeout is the connect's own, not the wait for the gate: a process ramping
            # up 5,000 connections queues most of them there for longer than a connect takes.
            async with self.gate if gated else contextlib.nullcontext():
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await loop.create_connection(
                        lambda: self.factory(self, slot), self.host, self.port,
                        local_addr=(self.source, 0),
                    )  # fmt: skip
            return True
        except Exception as exc:  # noqa: BLE001 - the reason goes into the result
            slot.reason = f"connect {type(exc).__name__}: {exc}"
            return False

    def lost(self, slot: Slot) -> None:
        """A connection ended (or failed to open): come back later if reconnecting."""
        if not self.reconnect:
            if slot.reason and len(self.errors) < 20:
                self.errors.append(slot.reason)
            return
        task = asyncio.get_running_loop().create_task(self._again(slot))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    def _delays(self) -> Iterator[float]:
        if self.jitter:
            return self.policy.delays()
        p = self.policy
        return (min(p.cap_s, p.base_s * p.factor**n) for n in range(1 << 30))

    async def _again(self, slot: Slot) -> None:
        if slot.delays is None:
            slot.delays = self._delays()
        while True:
            await asyncio.sleep(next(slot.delays))
            if await self.connect(slot, gated=False):
                return

    async def open_all(self) -> dict[str, Any]:
        t_first = time.time_ns()
        done = await asyncio.gather(*(self.connect(s) for s in self.slots))
        for slot, ok in zip(self.slots, done, strict=True):
            if not ok and self.reconnect:
                self.lost(slot)  # a reconnecting client keeps trying from the start
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        # A connect is done at the TCP level; the answer head (101 / 200) comes after.
        while time.monotonic() < deadline:
            if all(s.opens or not ok or s.reason for s, ok in zip(self.slots, done, strict=True)):
                break
            await asyncio.sleep(0.01)
        opened = [s.opens[0] for s in self.slots if s.opens]
        reasons = Counter(s.reason[:80] for s in self.slots if s.reason)
        return {
            "connected": len(opened), "of": len(self.slots), "t_first_ns": t_first,
            "t_last_ns": max(opened, default=t_first), "errors": sorted(reasons)[:20],
            "error_counts": dict(reasons.most_common(20)),
        }  # fmt: skip

    def answer(self, cmd: dict[str, Any]) -> dict[str, Any]:
        kind = cmd.get("cmd")
        if kind == "status":
            return {
                "open": sum(s.open for s in self.slots),
                "opens": sum(len(s.opens) for s in self.slots),
                "errors": self.errors[:20],
            }
        if kind == "mark":
            self.win.reads, self.win.counts, self.win.ts = [], [], []
            return {"marked": True}
        if kind == "latency":
            seq = int(cmd["seq"])
            got = sum(1 for s in self.slots if (s.tally.last_seq or -1) >= seq)
            arrivals = _repeat(self.win.reads, self.win.counts)
            lat = [r - t for r, t in zip(arrivals, self.win.ts, strict=True)]
            return {"got": got, "lat_ns": lat}
        if kind == "storm":
            since = int(cmd["since_ns"])
            t = [s.tally for s in self.slots]
            self.win.reads, self.win.counts, self.win.ts = [], [], []
            return {
                "back_ns": [next((o for o in s.opens if o > since), None) for s in self.slots],
                "resumed_ns": [next((o for o in s.resumed if o > since), None) for s in self.slots],
                "lost": sum(x.last - x.first + 1 - x.seen for x in t if x.first and x.last),
                "duplicates": sum(x.duplicates for x in t),
                "gaps": sum(x.gaps for x in t),
                "delivered": sum(x.seen for x in t),
                "opens": sum(len(s.opens) for s in self.slots),
                "attempts": self.attempts,
            }
        raise ValueError(f"unknown command {cmd!r}")


def _repeat(reads: list[int], counts: list[int]) -> list[int]:
    return [r for r, c in zip(reads, counts, strict=True) for _ in range(c)]


async def main(spec: dict[str, Any]) -> None:
    holder = Holder(spec)
    say(await holder.open_all())
    try:
        while (cmd := await read_command()).get("cmd") != "stop":
            say(holder.answer(cmd))
    finally:
        holder.reconnect = False
        for task in list(holder.pending):
            task.cancel()


if __name__ == "__main__":
    raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(json.loads(sys.argv[1])))
    sys.exit(0)
