"""Experiments as data: cells (transport x subscribers x rate x size x options) and named profiles.

A :class:`Cell` says everything the runner needs: which server (the Python app or the Node
baseline) with which settings (``server_env``: ``PUSHLAB_*`` variables, so any future setting such
as compression, a Redis broker or an nginx front becomes matrix data), which load generator
(``asyncio`` clients, ``locust``, or ``idle`` connections for memory), how many subscribers, and the
client options (short-poll interval, permessage-deflate, ...). ``tags`` say which figures use it.

Profiles: ``tiny`` (tests, seconds), ``quick`` (``make bench``, <= 3 minutes on 2 cores),
``full`` (longer windows, more points) and ``protocols`` (every transport over each HTTP version,
:data:`PROTOS`; ``protocols-tiny`` for tests). Cells that need a setting this build of the server
does not have, or a protocol their server does not speak, are dropped by :func:`available` with
the reason, never silently.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from experiments.records import CellParams, check
from feed.settings import ENV_PREFIX, Settings
from feed.wire.contract import TRANSPORTS, WEBTRANSPORT

NODE_TRANSPORTS = ("poll", "long-poll", "sse", "ws")  # what baseline/node/server.js serves
# The bench's Node cells: its CPU and p99 targets compare every transport against Node ws (and
# SSE); the polls' Node rows are measured where they decide something, in the capacity search.
NODE_HEADLINE = ("sse", "ws")
# The HTTP version dimension (issue 20): plaintext HTTP/1.1 (uvicorn, the default), HTTP/1.1 over
# TLS (uvicorn; TLS's own cost) and HTTP/2 over TLS (hypercorn, ALPN h2; the WebSocket by RFC
# 8441). A protocol is a server setting plus one client option, the same for every transport.
PROTOS = ("h1", "h1-tls", "h2-tls", "h3")
# Transports that hold a connection between events (short polling holds none) and, per protocol,
# how many idle ones measure the server's memory per connection: enough that RSS growth is well
# above the allocator's noise, few enough that 20 cells of TLS handshakes stay in minutes.
IDLE_TRANSPORTS = ("long-poll", "sse", "ws", "stream")
PROTOCOLS_IDLE = 1_000
# Node: node:https, and node:http2's secure server (baseline/node/server.js).
PROTO_SERVERS = {
    "h1": ("python", "granian", "node"), "h1-tls": ("python", "node"), "h2-tls": ("python", "node"),
    "h3": ("python", "node"),
}  # fmt: skip
# Combinations a server cannot serve, and why (tests/experiments/test_baseline.py shows it).
NOT_SUPPORTED = {
    ("node", "ws", "h2-tls"): "Node's ws has no RFC 8441 (extended CONNECT): its WebSocket "
    "needs an HTTP/1.1 connection",
    ("python", "ws", "h3"): "WebSocket over HTTP/3 (RFC 9220): no browser ships it "
    "(tests/clients/web/test_no_ws_over_h3.py) and the lab has no client for it",
    **{
        ("node", t, "h3"): "Node has no HTTP/3 server (node:quic is not in Node 20, the "
        "baseline's runtime; tests/experiments/test_baseline.py)"
        for t in ("poll", "long-poll", "sse", "ws")
    },
}
# A server with WebTransport on (any free UDP port; GET /webtransport names it).
WEBTRANSPORT_ENV = {"PUSHLAB_WEBTRANSPORT_PORT": "0"}
DEFAULT_POLL_INTERVAL_S = 0.25
DEFAULT_LONG_POLL_WAIT_S = 20.0
# The Python SSE row twice: sse-starlette (the design card's choice, the default) and pushlab's
# one-task response (servers/sse/stream.py), so the cost of the choice is in every perf run and
# in every bench's idle-memory figure.
VARIANTS: dict[tuple[str, str], tuple[dict[str, str], ...]] = {
    ("python", "sse"): ({}, {"PUSHLAB_SSE_IMPL": "pushlab"}),
}
# Server settings that make a different implementation of the same transport (a row of its own).
VARIANT_ENV = ("PUSHLAB_SSE_IMPL", "PUSHLAB_SSE_DIRECT", "PUSHLAB_WS_DIRECT", "PUSHLAB_WS_IMPL")


def _variants(server: str, transport: str) -> tuple[dict[str, str], ...]:
    return VARIANTS.get((server, transport), ({},))


def who(server: str) -> str:
    """The server's name in tables: the lab's own is ``pushlab``, a baseline keeps its name."""
    return "pushlab" if server == "python" else server


def variant(server_env: dict[str, str] | None) -> list[str]:
    """The implementation settings in a cell's server env, as ``sse_impl=pushlab``."""
    env = server_env or {}
    return [f"{k.removeprefix(ENV_PREFIX).lower()}={env[k]}" for k in VARIANT_ENV if k in env]


@dataclass(frozen=True)
class Cell:
    """One measurement: a server configuration, a load, and which figures it feeds."""

    transport: str
    subscribers: int
    rate: float
    size: int
    kind: str = "asyncio"  # asyncio | locust | idle | hpack (experiments/hpack.py)
    server: str = "python"  # python (uvicorn) | granian (the same app under Granian) | node
    server_env: dict[str, str] = field(default_factory=dict)
    client: dict[str, Any] = field(default_factory=dict)
    warmup_s: float = 1.0
    duration_s: float = 3.0
    generators: int = 1
    tags: tuple[str, ...] = ()
    # Pause the ticker (POST /admin/ticker rate=0) until every subscriber is connected, then
    # start it at ``rate``: a flat-out ticker starves the handshakes of late subscribers.
    preconnect: bool = False
    proto: str = "h1"  # PROTOS

    @property
    def name(self) -> str:
        """A readable, unique id (also the raw-file stem)."""
        parts = [self.kind, self.server, self.transport, f"n{self.subscribers}"]
        parts += [f"r{self.rate:g}", f"s{self.size}"]
        parts += [f"{k}={v}" for k, v in sorted(self.client.items())]
        parts += [
            f"{k.removeprefix(ENV_PREFIX).lower()}={v}" for k, v in sorted(self.server_env.items())
        ]
        parts += [self.proto] if self.proto != "h1" else []
        return "_".join(str(p).replace("/", "-") for p in parts)

    @property
    def server_key(self) -> tuple[Any, ...]:
        """Cells with the same key can share one server process (idle cells never do)."""
        if self.kind == "idle":
            return ("idle", self.name)
        return (
            self.server, self.rate, self.size, tuple(sorted(self.server_env.items())), self.proto,
        )  # fmt: skip

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for the transport's client, with the lab's defaults filled in."""
        opts: dict[str, Any] = {}
        if self.transport == "poll":
            opts["interval_s"] = DEFAULT_POLL_INTERVAL_S
        if self.transport == "long-poll":
            opts["wait_s"] = DEFAULT_LONG_POLL_WAIT_S
        if self.proto == "h2-tls":
            opts["http2"] = True
        if self.proto == "h3":
            opts["http3"] = True
        return opts | self.client

    def params(self) -> CellParams:
        """The cell's parameters as saved in summary rows."""
        d = dataclasses.asdict(self)
        d["tags"] = list(self.tags)
        d["client"] = self.client_options()
        return check(CellParams, {"cell": self.name, **d}, f"cell {self.name}")


def merge(cells: Iterable[Cell]) -> list[Cell]:
    """Drop duplicates (same name), uniting their tags; order of first appearance."""
    out: dict[str, Cell] = {}
    for c in cells:
        if c.name in out:
            old = out[c.name]
            tags = old.tags + tuple(t for t in c.tags if t not in old.tags)
            out[c.name] = dataclasses.replace(old, tags=tags)
        else:
            out[c.name] = c
    return list(out.values())


def available(cells: Iterable[Cell]) -> tuple[list[Cell], list[str]]:
    """Cells whose server settings exist in :class:`Settings`, and why the others were dropped."""
    known = {f.name for f in dataclasses.fields(Settings)}
    keep, dropped = [], []
    for c in cells:
        if c.server not in PROTO_SERVERS.get(c.proto, ()):
            dropped.append(f"{c.name}: {c.server} is not served over {c.proto} here")
            continue
        why = NOT_SUPPORTED.get((c.server, c.transport, c.proto))
        if why:
            dropped.append(f"{c.name}: not supported: {why}")
            continue
        missing = [k for k in c.server_env if k.removeprefix(ENV_PREFIX).lower() not in known]
        if missing and c.server != "node":
            dropped.append(f"{c.name}: server setting {', '.join(missing)} not in this build")
        else:
            keep.append(c)
    return keep, dropped


def _profile(
    *,
    subs: tuple[int, ...],
    rates: tuple[float, ...],
    base_rate: float,
    size: int,
    small: int,
    intervals: tuple[float, ...],
    idle_n: int,
    warmup_s: float,
    duration_s: float,
    locust_users: int,
    extras: bool = True,
    idle_transports: tuple[str, ...] = IDLE_TRANSPORTS,
) -> list[Cell]:
    common: dict[str, Any] = {"size": size, "warmup_s": warmup_s, "duration_s": duration_s}
    big = max(subs)
    cells: list[Cell] = []
    for t in TRANSPORTS:
        for n in subs:
            tags = (
                ("subs",) + (("headline",) if n == big else ()) + (("rate",) if n == small else ())
            )
            if t == "poll" and n == small:
                tags += ("interval",)
            # One asyncio process ingests ~40k messages/s on a core here (FIELD-NOTES): split
            # big fan-outs over two so the generator is less likely to be the limit.
            gens = 2 if n * base_rate > 20_000 else 1
            cells.append(Cell(t, n, base_rate, generators=gens, tags=tags, **common))
        for r in rates:
            cells.append(Cell(t, small, r, tags=("rate",), **common))
    for iv in intervals:
        cells.append(
            Cell("poll", small, base_rate, client={"interval_s": iv}, tags=("interval",), **common)
        )
    for t in NODE_HEADLINE if extras else ():
        cells.append(
            Cell(t, big, base_rate, server="node", tags=("baseline", "headline"), **common)
        )
    if extras:
        # The same WS cell with permessage-deflate negotiated (the ticker pads with "x": very
        # compressible, so this shows the upper bound of the saving). Needs the server setting
        # ws_compression; until this build has it the cell is dropped with the reason.
        on = {"PUSHLAB_WS_COMPRESSION": "1"}
        deflate = Cell(
            "ws", small, base_rate, server_env=on, client={"compression": True}, **common
        )
        cells.append(dataclasses.replace(deflate, tags=("deflate",)))
    for t in idle_transports:
        for env in _variants("python", t) if extras else ({},):
            cells.append(
                Cell(t, idle_n, 0.0, kind="idle", server_env=env, tags=("idle",), **common)
            )
    if locust_users:
        # Locust needs a few seconds to spawn its users before anything is delivered.
        slow = common | {"duration_s": max(duration_s, 3.0)}
        cells.append(Cell("ws", locust_users, base_rate, kind="locust", tags=("locust",), **slow))
    return merge(cells)


def profile(name: str) -> list[Cell]:
    """The cells of a named profile."""
    if name == "tiny":
        cells = _profile(
            subs=(5,),
            rates=(),
            base_rate=20,
            size=64,
            small=5,
            intervals=(),
            idle_n=20,
            warmup_s=0.3,
            duration_s=1.5,
            locust_users=3,
            extras=False,
            idle_transports=("ws",),
        )
        # The WebSocket cell runs on two load processes so tests cover merging their results;
        # short polling polls fast so its byte check spans enough requests to mean something.
        changes: dict[str, dict[str, Any]] = {
            "ws": {"generators": 2},
            "poll": {"client": {"interval_s": 0.05}},
        }
        return [
            dataclasses.replace(c, **changes[c.transport])
            if c.kind == "asyncio" and c.transport in changes
            else c
            for c in cells
        ]
    if name == "quick":
        quick = _profile(
            subs=(10, 100),
            rates=(2, 200),
            base_rate=50,
            size=64,
            small=10,
            intervals=(0.05, 1.0),
            idle_n=200,
            warmup_s=0.5,
            duration_s=2.5,
            locust_users=10,
        )
        # One HTTP/2 cell per transport next to the same cell over plaintext HTTP/1.1 above.
        h2 = protocols_profile(protos=("h2-tls",), warmup_s=0.5, duration_s=2.5, hpack=False)
        return quick + h2
    if name in ("protocols", "protocols-tiny"):
        if name == "protocols":
            # 100: hypercorn's SETTINGS_MAX_CONCURRENT_STREAMS, all on one connection.
            return protocols_profile(streams=100, node=True, idle_n=PROTOCOLS_IDLE)
        return protocols_profile(
            subscribers=3, rate=20, warmup_s=0.3, duration_s=1.0, streams=6, node=True,
            idle_n=20, idle_transports=("ws",),
        )  # fmt: skip
    if name == "full":
        cells = _profile(
            subs=(10, 100, 400, 1000),
            rates=(1, 5, 200, 1000),
            base_rate=50,
            size=64,
            small=10,
            intervals=(0.05, 0.1, 0.5, 1.0, 2.0),
            idle_n=1000,
            warmup_s=2.0,
            duration_s=10.0,
            locust_users=100,
        )
        sizes = [
            Cell(t, 10, 50, size=s, warmup_s=2.0, duration_s=10.0, tags=("size",))
            for t in TRANSPORTS
            for s in (16, 1024, 8192)
        ]
        return merge(cells + sizes)
    if name in ("perf", "perf-tiny"):
        return perf_profile(tiny=name == "perf-tiny")
    if name == "perf-granian":
        return granian_profile()
    if name == "perf-wire":
        return wire_profile()
    if name in PERF_PARTS:
        # One part of the perf profile (repeat runs of the part that is noisy or slow).
        part = name.removeprefix("perf-")
        return [c for c in perf_profile() if part in c.tags]
    raise ValueError(f"unknown profile {name!r} ({', '.join(PROFILES)})")


# Issue 8's cells: each Python push transport against the Node ws row in the same run.
PERF_SUBSCRIBERS = 200
PERF_RATES = (100.0, 200.0)
# Flat out: a ticker far above what any server here delivers (200 x 2000 = 400k deliveries/s;
# at 200k the quiet-machine run's SSE cell delivered all that was asked: the ticker was the
# limit); the subscriber buffer is raised so that a server falling behind is measured, not kicked.
PERF_FLAT_RATE = 2000.0
PERF_FLAT_ENV = {"PUSHLAB_SUBSCRIBER_BUFFER": "100000"}
# Flat out the lab's clients spend 3-4x the server's CPU per event, so on a small machine the
# generators set the figure; the counting wire parses per read, not per event
# (experiments/countwire.py).
PERF_FLAT_CLIENT = {"wire": "count", "hold_ms": 10}
PERF_IDLE = 10_000
PERF_ROWS = (("node", "ws"), ("python", "ws"), ("python", "sse"), ("python", "long-poll"))
# The same app under Granian instead of uvicorn (issue 8: "consider Granian"); paced and idle.
PERF_GRANIAN_ROWS = (("granian", "ws"), ("granian", "sse"))
# SSE subscribers on the lean wire (clients/sse_wire.py): on httpx an SSE generator spent 2.7x the
# WebSocket client's CPU (docs/performance.md, lever 17): the generator, not the server, set p99.
PERF_CLIENT = {"sse": {"wire": "stream"}}


def protocols_profile(
    *,
    protos: tuple[str, ...] = PROTOS,
    subscribers: int = 10,
    rate: float = 50,
    warmup_s: float = 1.0,
    duration_s: float = 5.0,
    hpack: bool = True,
    streams: int = 0,
    node: bool = False,
    idle_n: int = 0,
    idle_transports: tuple[str, ...] = IDLE_TRANSPORTS,
) -> list[Cell]:
    """Every transport over every HTTP version: the same load, the server and client the
    protocol names (``protocols``; quick takes its h2-tls cells). ``hpack``: per protocol, one
    cell of polls in a row on one connection, on the same server (experiments/hpack.py).
    ``streams`` > 0: that many SSE subscribers on one HTTP/2 connection and on one QUIC
    connection, against as many connections over h1-tls, h2-tls and h3 (``multiplex``).
    ``node``: the Node baseline's cells of the same load next to them (node:https,
    node:http2), where it serves the combination.
    With h3 in ``protos``, WebTransport (HTTP/3 only) gets the same cells. ``idle_n`` > 0:
    server memory per idle connection of ``idle_transports`` (and WebTransport) over each protocol
    (``protocols-idle``: TLS state and, over h2, an HTTP/2 connection per subscriber)."""
    servers = ("python", "node") if node else ("python",)
    cells = [
        Cell(t, subscribers, rate, size=64, server=srv, proto=p, warmup_s=warmup_s,
             duration_s=duration_s, tags=("protocols",))
        for srv in servers
        for t in TRANSPORTS
        for p in protos
        if srv == "python" or t in NODE_TRANSPORTS
    ]  # fmt: skip
    if "h3" in protos:
        # The sixth transport: WebTransport, HTTP/3 only, on the UDP port the server announces.
        cells.append(
            Cell(WEBTRANSPORT, subscribers, rate, size=64, proto="h3", warmup_s=warmup_s,
                 duration_s=duration_s, server_env=dict(WEBTRANSPORT_ENV), tags=("protocols",))
        )  # fmt: skip
    if idle_n:
        cells += [
            Cell(t, idle_n, 0.0, size=64, kind="idle", server=srv, proto=p, generators=2,
                 tags=("protocols-idle",))
            for srv in servers
            for t in idle_transports
            for p in protos
            if srv == "python" or t in NODE_TRANSPORTS
        ]  # fmt: skip
        if "h3" in protos:
            cells.append(
                Cell(WEBTRANSPORT, idle_n, 0.0, size=64, kind="idle", proto="h3", generators=2,
                     server_env=dict(WEBTRANSPORT_ENV), tags=("protocols-idle",))
            )  # fmt: skip
    if hpack:
        cells += [
            Cell("poll", 1, rate, size=64, kind="hpack", proto=p, warmup_s=0.0, duration_s=0.0,
                 tags=("hpack",))
            for p in protos
        ]  # fmt: skip
    if streams:
        timing: dict[str, Any] = {"size": 64, "warmup_s": warmup_s, "duration_s": duration_s}
        one = {"shared_connection": True}
        cells += [
            Cell("sse", streams, rate, proto=p, client=c, tags=("multiplex",), **timing)
            for p, c in (("h1-tls", {}), ("h2-tls", {}), ("h2-tls", one), ("h3", {}), ("h3", one))
        ]
    return cells


def perf_profile(tiny: bool = False) -> list[Cell]:
    """Paced CPU/latency cells, flat-out capacity and idle memory (``tiny``: seconds, for tests).

    Paced cells split the subscribers over generator processes so that each ingests at most
    ~10k events/s (a Python client process saturates near 40k/s on one core here); flat-out
    cells use four, and connect them all before the ticker starts. Every cell records
    generator and server CPU; ratios only count unsaturated generators, and flat out they say
    which server was the limit (:mod:`experiments.ratios`).
    """
    subs, flat, idle, rates, timing = _perf_scale(tiny)
    # Granian rows run in perf-granian; the tiny profile keeps them so the test covers the kind.
    extra = PERF_GRANIAN_ROWS if tiny else ()
    cells = _paced(PERF_ROWS + extra, subs, rates, timing)
    for server, t in PERF_ROWS[:3]:
        for variant in _variants(server, t):
            env = (PERF_FLAT_ENV if server == "python" else {}) | variant
            cells.append(
                Cell(t, subs, flat, server=server, server_env=env, generators=2 if tiny else 4,
                     client=PERF_FLAT_CLIENT, preconnect=True, tags=("perf", "flat"),
                     **timing)
            )  # fmt: skip
    cells += _idle(PERF_ROWS[:3] + extra, idle, timing)
    return cells


def granian_profile(tiny: bool = False) -> list[Cell]:
    """The Granian rows of ``perf`` alone, for repeats: WS and SSE paced and idle, vs Node ws.

    The uvicorn WS and SSE paced rows run too, so Granian vs uvicorn is a same-run comparison
    (idle memory under uvicorn is in ``perf-idle``: memory is robust to noise).
    """
    subs, _, idle, rates, timing = _perf_scale(tiny)
    node, uvicorn = PERF_ROWS[:1], PERF_ROWS[1:3]
    return _paced(node + uvicorn + PERF_GRANIAN_ROWS, subs, rates, timing) + _idle(
        node + PERF_GRANIAN_ROWS, idle, timing
    )


def wire_profile() -> list[Cell]:
    """What the flat cells' counting wire changes on the server, paced, per push row: at
    200 x 100 the lab's clients, the counting wire and the counting wire with its hold; at
    200 x 500 (where a 10 ms hold batches ~5 events per read) the counting wire with and without.

    A subscriber that reads less often is woken less often, and on loopback the kernel charges
    a reader's wake-up to the sender; these cells measure how much of the server's CPU per event
    that is (no ``perf`` tag: not part of the ratios). 8 s windows, 4 generator processes.
    """
    subs, _, _, _, timing = _perf_scale(False)
    timing |= {"duration_s": 8.0}
    count: dict[str, Any] = {"wire": "count"}
    variants = [(100.0, c) for c in ({}, count, PERF_FLAT_CLIENT)]
    variants += [(500.0, c) for c in (count, PERF_FLAT_CLIENT)]
    return [
        Cell(t, subs, rate, server=server, generators=4, preconnect=True, tags=("wire",),
             client=c or PERF_CLIENT.get(t, {}), **timing)
        for server, t in PERF_ROWS[:3]
        for rate, c in variants
    ]  # fmt: skip


def _perf_scale(tiny: bool) -> tuple[int, float, int, tuple[float, ...], dict[str, Any]]:
    timing: dict[str, Any] = {"size": 64, "warmup_s": 1.0, "duration_s": 4.0}
    if tiny:
        return 6, 200.0, 30, (20.0,), timing | {"warmup_s": 0.3, "duration_s": 1.0}
    return PERF_SUBSCRIBERS, PERF_FLAT_RATE, PERF_IDLE, PERF_RATES, timing


def paced_generators(subscribers: int, rate: float) -> int:
    """Generator processes for a paced cell: each ingests at most ~10k events/s (1 to 4)."""
    return max(1, min(4, math.ceil(subscribers * rate / 10_000)))


def _paced(
    rows: tuple[tuple[str, str], ...], subs: int, rates: tuple[float, ...], timing: dict[str, Any]
) -> list[Cell]:
    cells = []
    for rate in rates:
        gens = paced_generators(subs, rate)
        for server, t in rows:
            # The long-poll client (httpx) pays per request, not per event: at 200 x 100 two
            # processes ran at 92-95% of a core (three quiet perf runs), which voids the row.
            n_gens = 4 if t == "long-poll" else gens
            # Connected before the ticker starts: on a slower machine (AMD EPYC VM, three perf
            # runs at 9088703) 200 subscribers connecting into a running 200 events/s feed
            # failed every 200 x 200 cell but one (149-183 of 200 connected in time).
            cells += [
                Cell(t, subs, rate, server=server, server_env=env, generators=n_gens,
                     client=PERF_CLIENT.get(t, {}), preconnect=True, tags=("perf", "paced"),
                     **timing)
                for env in _variants(server, t)
            ]  # fmt: skip
    return cells


def _idle(rows: tuple[tuple[str, str], ...], n: int, timing: dict[str, Any]) -> list[Cell]:
    return [
        Cell(
            t,
            n,
            0.0,
            kind="idle",
            server=server,
            server_env=env,
            client=PERF_CLIENT.get(t, {}),
            tags=("perf", "idle"),
            **timing,
        )  # fmt: skip
        for server, t in rows
        for env in _variants(server, t)
    ]


PERF_PARTS = ("perf-paced", "perf-flat", "perf-idle")
PROFILES = (
    "tiny", "quick", "full", "perf", "perf-tiny", *PERF_PARTS, "perf-granian", "perf-wire",
    "protocols", "protocols-tiny",
)  # fmt: skip
