"""The asyncio load generator: ``python -m experiments.loadgen SPEC_JSON``, one process.

It runs ``subscribers`` of the lab's own clients (``clients/``: the same reconnect, resume and
dedupe code a user runs) on uvloop and talks to the runner over pipes, like vmbench's clients:

1. stdout ``{"connected": n, "subscribers": N, "cursor_min": .., "cursor_max": ..}`` once every
   subscriber has its start cursor (``idle`` specs: once each has a connection);
2. stdin ``{"cmd": "window", "t0_ns": .., "t1_ns": ..}``: count what arrives in ``[t0, t1)``
   (both ``time.time_ns()``, the clock the server stamps events with), print the result line,
   and keep the connections open until stdin says ``{"cmd": "stop"}`` (or closes), so the
   runner can read the kernel's byte counters at ``t1`` on live sockets. HTTP/3 specs
   (``client.http3``) also report the UDP payload bytes this process sent and received over
   ``[t0, t1)`` (``udp_up_bytes``, ``udp_down_bytes``; ``udp_connections`` open at ``t1``):
   UDP sockets keep no byte counters.

Samples go to ``spec["raw_path"]`` as an ``.npy`` of int64 rows ``(recv_ns, latency_ns)`` for
every event received from ``t0 - MARGIN`` to ``t1 + MARGIN``: the runner aligns event counts with
the moments it read the byte counters. Lost events are seqs missing between a subscriber's first
and last event of the window; duplicates are events the server sent twice (the client drops and
counts them). The result also gives the range of the subscribers' first received seqs
(``first_seq_min``/``_max``, window or not): with a paused ticker and equal start cursors, every
subscriber's first event is the resumed ticker's first. Polling clients also get
``<raw_path stem>.responses.npy``: rows ``(done_ns, empty)`` per HTTP answer in the same span, so
the runner can count requests over exactly the interval it read the byte counters over.

``spec["client"]["wire"] == "count"`` runs :mod:`experiments.countwire`'s subscribers instead
(flat-out cells): the same pipe protocol and result keys, parsed per read.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from clients import CLIENTS
from clients._h3 import UDP
from clients._http import make_http
from clients.base import FeedClient, Received
from feed.codec import dumps, loads
from feed.fdlimit import raise_nofile

MARGIN_NS = 250_000_000
_COUNTERS = ("requests", "empty_responses", "duplicates", "reconnects", "connections", "gaps")


@dataclass
class Sub:
    """One subscriber's view of the window."""

    client: FeedClient
    first: int | None = None
    last: int | None = None
    seen: int = 0
    nbytes: int = 0
    seq_digits: int = 0
    cursor: int | None = None  # where the subscription started (first seen ready)
    first_any: int | None = None  # first event received at all, before the window too
    # Counters at the first event at/after t0 and t1 (None: no such event yet), so requests and
    # empty answers are counted over the same responses as the events, not by a timer that the
    # event loop may fire late.
    at_t0: dict[str, int] | None = None
    at_t1: dict[str, int] | None = None


class Window:
    """What is recorded: seq tracking in ``[t0, t1)``, samples in the window plus margins."""

    def __init__(self) -> None:
        self.t0 = self.t1 = 0
        self.open = False
        self.samples: list[tuple[int, int]] = []
        self.responses: list[tuple[int, int]] = []

    def spans(self, t: int) -> bool:
        """Whether ``t`` falls in the recorded span (the window plus margins)."""
        return self.open and self.t0 - MARGIN_NS <= t < self.t1 + MARGIN_NS


def _time_responses(client: FeedClient, win: Window) -> None:
    """Wrap a polling client's ``fetch`` to stamp each answer (a thin shim: no extra I/O)."""
    fetch = getattr(client, "fetch", None)
    if fetch is None:
        return

    async def timed(*args: Any, **kwargs: Any) -> Any:
        response = await fetch(*args, **kwargs)
        now = time.time_ns()
        if win.spans(now):
            empty = response.status_code == 204 or b'"events":[]' in response.content
            win.responses.append((now, int(empty)))
        return response

    client.fetch = timed  # type: ignore[attr-defined]


async def _consume(sub: Sub, win: Window) -> None:
    try:
        await _consume_items(sub, win)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a fatal client error must reach the result, not vanish
        sub.client.counters.errors.append(f"fatal {type(exc).__name__}: {exc}")


async def _consume_items(sub: Sub, win: Window) -> None:
    async with contextlib.aclosing(sub.client.events()) as items:
        async for item in items:
            if isinstance(item, Received) and sub.first_any is None:
                sub.first_any = item.event.seq
            if not isinstance(item, Received) or not win.open:
                continue
            recv = item.recv_ns
            if win.spans(recv):
                win.samples.append((recv, recv - item.event.ts_ns))
            if recv >= win.t0 and sub.at_t0 is None:
                sub.at_t0 = _counters(sub.client)
            if recv >= win.t1 and sub.at_t1 is None:
                sub.at_t1 = _counters(sub.client)
            if not win.t0 <= recv < win.t1:
                continue
            seq = item.event.seq
            if sub.first is None:
                sub.first = seq
            sub.last = seq
            sub.seen += 1
            sub.nbytes += item.nbytes
            sub.seq_digits += len(str(seq))


def _counters(client: FeedClient) -> dict[str, int]:
    c = client.counters
    return {k: int(getattr(c, k)) for k in _COUNTERS}


async def read_command() -> dict[str, Any]:
    """The runner's next command line on stdin (a closed stdin means stop)."""
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return loads(line) if line.strip() else {"cmd": "stop"}


def say(obj: dict[str, Any]) -> None:
    """One JSON line to the runner."""
    sys.stdout.write(dumps(obj).decode() + "\n")
    sys.stdout.flush()


async def wait_for(cond: Callable[[], bool], timeout_s: float) -> None:
    """Poll ``cond`` every 10 ms until true or ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    while not cond() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def start_cursor(cursor: int | None, first_any: int | None) -> int | None:
    """A subscriber's start cursor: the server's answer, or the first event's seq - 1 when that
    is lower (events may arrive within the 10 ms readiness poll, before the cursor is read)."""
    if cursor is not None and first_any is not None:
        return min(cursor, first_any - 1)
    return cursor


def say_connected(connected: int, subscribers: int, cursors: list[int], errors: list[str]) -> None:
    """Step 1 of the pipe protocol: how many subscribers are in, and their start cursors."""
    say({
        "connected": connected, "subscribers": subscribers, "errors": sorted(set(errors)),
        "cursor_min": min(cursors, default=None), "cursor_max": max(cursors, default=None),
    })  # fmt: skip


class Windowed(Protocol):
    """What :func:`open_window` sets: the window's bounds and whether it is open."""

    t0: int
    t1: int
    open: bool


async def open_window(win: Windowed) -> bool:
    """Step 2: read the window command into ``win`` and open it; False when told to stop."""
    cmd = await read_command()
    if cmd.get("cmd") != "window":
        return False
    win.t0, win.t1 = int(cmd["t0_ns"]), int(cmd["t1_ns"])
    win.open = True
    return True


async def run(spec: dict[str, Any]) -> None:
    """Drive the spec until told to stop."""
    cls = CLIENTS[spec["transport"]]
    # One SSL context for all: httpx builds one per client otherwise (~70 ms each here: 14 s
    # for 200 subscribers). ``cafile``: the local CA of a TLS cell's server (else unused).
    shared = ssl.create_default_context(cafile=spec.get("cafile"))
    idle = spec.get("idle", False)
    options = dict(spec.get("client", {}))
    if options.pop("shared_connection", False):
        # Every subscriber's requests through one httpx pool: over HTTP/2 one connection, each
        # subscriber a stream of it (up to the server's SETTINGS_MAX_CONCURRENT_STREAMS).
        options["http"] = make_http(
            60.0, shared, bool(options.get("http2")), bool(options.get("http3"))
        )
    subs = [
        Sub(cls(spec["url"], spec["topic"], verify=shared, **options))
        for _ in range(spec["subscribers"])
    ]
    win = Window()
    for s in subs:
        _time_responses(s.client, win)
    tasks = [asyncio.create_task(_consume(s, win)) for s in subs]

    def ready(s: Sub) -> bool:
        if idle:
            return s.client.counters.connections > 0
        if s.cursor is None and s.client.last_seq is not None:
            s.cursor = s.client.last_seq  # before any event arrives: the server's answer
        s.cursor = start_cursor(s.cursor, s.first_any)
        return s.cursor is not None

    await wait_for(lambda: all(ready(s) for s in subs), spec.get("connect_timeout_s", 30.0))
    say_connected(
        sum(ready(s) for s in subs),
        len(subs),
        [s.cursor for s in subs if s.cursor is not None],
        [e for s in subs for e in s.client.counters.errors],
    )
    try:
        if not await open_window(win):
            return
        await asyncio.sleep(max(0.0, (win.t0 - time.time_ns()) / 1e9))
        before = [_counters(s.client) for s in subs]
        udp0 = (UDP.sent, UDP.received)
        await asyncio.sleep(max(0.0, (win.t1 - time.time_ns()) / 1e9))
        after = [_counters(s.client) for s in subs]
        udp = {
            "udp_up_bytes": UDP.sent - udp0[0],
            "udp_down_bytes": UDP.received - udp0[1],
            "udp_connections": UDP.connections,
        }
        await asyncio.sleep(MARGIN_NS / 1e9)
        win.open = False
        result = _result(spec, subs, before, after, win)
        say({"result": result | (udp if options.get("http3") else {})})
        await read_command()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if "http" in options:
            await options["http"].aclose()


def _result(
    spec: dict[str, Any],
    subs: list[Sub],
    before: list[dict[str, int]],
    after: list[dict[str, int]],
    win: Window,
) -> dict[str, Any]:
    totals = dict.fromkeys(_COUNTERS, 0)
    for s, b, a in zip(subs, before, after, strict=True):
        # Event-aligned counters when both edges saw an event, else the timer's.
        b, a = (s.at_t0, s.at_t1) if s.at_t0 is not None and s.at_t1 is not None else (b, a)
        for k in _COUNTERS:
            totals[k] += a[k] - b[k]
    delivered = sum(s.seen for s in subs)
    lost = sum(
        (s.last - s.first + 1 - s.seen) for s in subs if s.first is not None and s.last is not None
    )
    errors = sorted({e for s in subs for e in s.client.counters.errors})
    firsts = [s.first_any for s in subs if s.first_any is not None]
    np.save(spec["raw_path"], np.asarray(win.samples, dtype=np.int64).reshape(-1, 2))
    responses = np.asarray(win.responses, dtype=np.int64).reshape(-1, 2)
    np.save(spec["raw_path"].removesuffix(".npy") + ".responses.npy", responses)
    return {
        "generator": "asyncio",
        "subscribers": len(subs),
        "silent_subscribers": sum(1 for s in subs if s.seen == 0),
        "delivered": delivered,
        "lost": lost,
        "event_bytes": sum(s.nbytes for s in subs),
        "seq_digits": sum(s.seq_digits for s in subs),
        "errors": errors,
        "first_seq_min": min(firsts, default=None),
        "first_seq_max": max(firsts, default=None),
        **totals,
    }


def main() -> int:
    """Entry point of the subprocess."""
    spec = loads(sys.argv[1])
    raise_nofile()  # idle cells open thousands of connections from one process
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        runner = asyncio.run
    if spec.get("client", {}).get("wire") == "count":
        from experiments import countwire

        runner(countwire.run(spec))
    else:
        runner(run(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
