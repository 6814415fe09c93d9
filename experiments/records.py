"""The saved shape of every result: one TypedDict per cell kind, from the runner to the report.

A results folder's ``summary.json`` is ``{"cells": [...]}`` and its ``meta.json`` one object;
both stay plain JSON. These TypedDicts name every key a run may write, so mypy checks each
``cell["key"]`` in ratios, reports, plots and docfigures, and :func:`check` rejects a saved
run with a key that is missing or unknown (naming the file and the key) when it is loaded.

New keys are declared here, next to the kind that writes them, in this one flat module: a
runner that writes a key not declared here produces a run that will not load. Optional keys
(``NotRequired``) are the ones a cell writes only for some transports, kinds or outcomes, or
that older committed runs lack.

This module deliberately has no ``from __future__ import annotations``: :func:`check` reads
``__required_keys__``, which Python 3.11 computes only from evaluated annotations.
"""

import typing
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict, TypeVar


class RecordError(ValueError):
    """A saved result whose keys do not match its declared record."""


# ---------------------------------------------------------------------------------------------
# Shared pieces. A ``<prefix>_{count,mean,min,max,p50,p90,p99,p99_9}`` group is what
# experiments.metrics.summarize writes; each prefix a record uses is spelt out key by key.


class Machine(TypedDict):
    """Where a run happened (experiments.machine.machine_info)."""

    python: str
    implementation: str
    os: str
    cpu: str
    cores: int | None
    load_avg: list[float]
    git_commit: str | None
    git_dirty: bool
    versions: dict[str, str | None]


class ClientOptions(TypedDict, total=False):
    """Keyword arguments of a cell's client (experiments.matrix.Cell.client_options)."""

    interval_s: float  # poll
    wait_s: float  # long-poll
    hold_ms: int
    wire: str
    compression: bool  # ws permessage-deflate
    source: str  # counting wire: local address to bind, or "auto" (one per process)
    http2: bool  # HTTP/2 over TLS (cells with proto h2-tls)
    http3: bool  # HTTP/3 over QUIC (cells with proto h3)
    # A generator's subscribers share one httpx pool (h2: one TCP connection, h3: one QUIC one).
    shared_connection: bool


class CellParams(TypedDict):
    """One bench cell's parameters (experiments.matrix.Cell.params)."""

    cell: str
    transport: str
    subscribers: int
    rate: float
    size: int
    kind: str  # asyncio | locust | idle | hpack
    server: str  # python | granian | node
    server_env: dict[str, str]
    client: ClientOptions
    warmup_s: float
    duration_s: float
    generators: int
    tags: list[str]
    preconnect: NotRequired[bool]  # runs before 2026-11-26 lack it
    proto: NotRequired[str]  # h1 | h1-tls | h2-tls (experiments.matrix.PROTOS); older runs: h1


class Delivery(TypedDict, total=False):
    """What the asyncio load generators measure (experiments.cells, loadgen, sockstats)."""

    generator: str
    errors: list[str]
    silent_subscribers: int
    delivered: int
    lost: int
    event_bytes: int
    seq_digits: int
    first_seq_min: int
    first_seq_max: int
    requests: int
    empty_responses: int
    duplicates: int
    reconnects: int
    connections: int
    gaps: int
    connected: int
    window_s: float
    machine_cpu_pct: float
    server_wait_pct: float  # runnable but waiting for a CPU, % of the window
    ticker_paused_at: int
    start_cursor_min: int
    start_cursor_max: int
    preconnected: bool
    latency_ms_count: float
    latency_ms_mean: float
    latency_ms_min: float
    latency_ms_max: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_p99_9: float
    latency_cdf: list[list[float]]  # [quantile, ms] pairs
    # experiments/schedule.py: the ticker against its schedule, and latency from due times
    ticker_lag_ms_p50: float
    ticker_lag_ms_p95: float
    ticker_lag_ms_p99: float
    ticker_lag_ms_max: float
    schedule_latency_ms_p50: float
    schedule_latency_ms_p95: float
    schedule_latency_ms_p99: float
    schedule_latency_ms_max: float
    wire_window_events: int
    wire_window_requests: int
    wire_window_empty: int
    events_per_s: float
    server_cpu_s: float
    server_cpu_pct: float
    server_cpu_s_per_1k_events: float
    server_bound: bool
    generator_processes: int
    generator_cpu_pct: float
    generator_cpu_pct_each: list[float]
    generator_cpu_s_per_1k_events: float
    generator_bound: bool
    server_rss_mb: float
    wire_edge_pct: float
    app_bytes_per_event: float
    wire_up_bytes_per_event: float
    wire_down_bytes_per_event: float
    wire_down_segments_per_event: float
    wire_bytes_per_event: float
    formula_up_bytes_per_event: float
    formula_down_bytes_per_event: float
    formula_bytes_per_event: float
    wire_vs_formula_pct: float
    wire_connections: int
    wire_closed_connections: int
    requests_per_event: float
    empty_fraction: float


class LocustFigures(TypedDict, total=False):
    """What a Locust cell adds (experiments.locust_runner)."""

    users: int
    bytes_per_event: float
    generator_cpu_peak_pct: float
    generator_cpu_total_pct: float
    machine_bound: bool
    failures: int
    silent_gaps: int
    hub_blocked: int
    users_delivering: int
    peak_open_sessions: int
    locust_processes: int
    locust_workers: int
    locust_csv_requests: int
    delivery_span_s: float
    wall_s: float
    exit_code: int
    command: str
    cpu_scope: str


class IdleFigures(TypedDict, total=False):
    """What an idle cell adds: server memory per open connection."""

    idle_connections: int
    server_rss_mb_before: float
    memory_per_connection_kb: float


class HpackFigures(TypedDict, total=False):
    """What an ``hpack`` cell adds (experiments.hpack): polls in a row on one connection."""

    request_up_bytes: list[int]  # per request; request 1 includes the connection's setup
    request_down_bytes: list[int]
    first_request_bytes: int  # up + down
    second_request_bytes: int
    steady_request_bytes: float  # median of requests 3..n
    steady_request_up_bytes: float


# ---------------------------------------------------------------------------------------------
# The capacity search (experiments.capacity). Its steps are bench cells carrying CapacityStep's
# keys too; its knees, the machine's ceiling and the request floors are derived rows of the same
# summary.json, told apart by "kind" and checked as KneeRow / CalibrationRow / RequestFloorRow
# (DERIVED_ROWS, results.load_cells).


class CapacityStep(TypedDict, total=False):
    """What a capacity step adds to its bench cell (experiments.capacity.search)."""

    row: str  # the searched row, e.g. "pushlab ws"
    search: str  # knee | shootout
    step: int
    offered_per_s: float
    delivered_pct: float
    carried_pct: float
    latency_ms_p95: float
    wire_bytes_per_s: float
    within: bool
    broke: list[str]


class KneeRow(TypedDict):
    """A row's knee (experiments.capacity.knee): the largest step within the service level."""

    kind: str  # "knee"
    tags: list[str]
    status: str  # "derived"
    row: str
    server: str
    transport: str
    search: str
    step: int | None
    subscribers: int
    rate: float
    events_per_s: float
    connections: int
    server_cpu_pct: float
    wire_bytes_per_s: float
    generator_cpu_pct: float
    server_cpu_us_per_event: float
    generator_cpu_us_per_event: float
    latency_ms_p99: float
    schedule_latency_ms_p99: NotRequired[float]  # runs before 2026-12-05 lack it
    ticker_lag_ms_p99: NotRequired[float]
    lower_bound: bool
    why: str


class CalibrationRow(TypedDict):
    """The machine's ceiling (experiments.capacity.calibration): one send per socket per event."""

    kind: str  # "calibration"
    tags: list[str]
    status: str
    generator: str
    sockets: int
    frame_bytes: int
    writes: int
    wall_s: float
    writer_cpu_s: float
    reader_cpu_s: float
    writes_per_s: float
    writes_per_core_s: float
    cpu_us_per_write: float


class RequestFloorFigures(TypedDict):
    """A server stack's request floor (experiments.capacity.request_floor): a fixed answer per
    request, closed loop."""

    server: str  # python | node
    connections: int
    answers: int
    wall_s: float
    answer_bytes: int
    server_cpu_s: float
    driver_cpu_s: float
    answers_per_s: float
    server_cpu_pct: float
    driver_cpu_pct: float
    answers_per_core_s: float
    server_us_per_answer: float
    driver_us_per_answer: float


class RequestFloorRow(RequestFloorFigures):
    """:class:`RequestFloorFigures` as a row of a capacity run's ``summary.json``."""

    kind: str  # "request-floor"
    tags: list[str]
    status: str
    generator: str


DERIVED_ROWS: dict[str, type[Mapping[str, object]]] = {
    "knee": KneeRow,
    "calibration": CalibrationRow,
    "request-floor": RequestFloorRow,
}


# ---------------------------------------------------------------------------------------------
# The bench (experiments.run): pushlab bench / pushlab plot


class BenchCell(
    CellParams, Delivery, LocustFigures, IdleFigures, HpackFigures, CapacityStep, total=False
):
    """One row of a bench run's ``summary.json``: parameters, outcome and figures."""

    status: typing.Required[str]  # ok | skipped | failed
    reason: str  # why skipped or failed
    server_index: int  # into meta["servers"]
    cell_wall_s: float


class ServerInfo(TypedDict):
    """One server process of a bench run (experiments.run.server)."""

    kind: str  # python | granian | node
    argv: list[str]
    settings: NotRequired[dict[str, Any]]  # feed.settings.Settings.as_dict(); not for node
    granian: NotRequired[str]


class BenchParams(TypedDict):
    profile: str
    cells: NotRequired[list[CellParams]]  # a capacity run plans its steps instead
    dropped: NotRequired[list[str]]
    plan: NotRequired[dict[str, Any]]  # experiments.capacity.cells.Plan, as a dict
    levels: NotRequired[dict[str, dict[str, Any]]]  # the service level per search


class BenchMeta(TypedDict):
    """A bench run's ``meta.json``."""

    params: BenchParams
    machine: Machine
    written_at: float
    servers: list[ServerInfo]
    started_at: float
    ended_at: NotRequired[float]  # written when the run ends
    interrupted: NotRequired[bool]


class RatioRow(TypedDict):
    """One row of ``ratios.json`` (experiments.ratios): a Python figure against Node ws."""

    figure: str
    server: str
    transport: str
    rate: float
    python: float
    node_ws: float
    ratio: float
    target: str
    met: bool
    counts: bool
    why_not: str
    note: str


# ---------------------------------------------------------------------------------------------
# Other experiments: one meta shape with free-form params, one cell kind each.


class BrowserProtocol(TypedDict):
    """experiments.browser_run: how the page reached the app for one ``--protocols`` entry."""

    name: str  # direct | h1 | h2 | h3 (experiments.browser_run.PROTOCOLS)
    # direct: the app itself, plaintext; nginx: TLS, http2 on or off, h1 to the app; hypercorn:
    # the app under hypercorn with HTTP/3 (TLS), Chromium forced onto QUIC for its origin
    via: str
    http2: bool
    max_streams: int | None  # nginx's http2_max_concurrent_streams; None: its default (128)


class RunMeta(TypedDict):
    """``meta.json`` of an experiment other than the bench (params are its own flags)."""

    params: dict[str, Any]
    machine: Machine
    written_at: float
    started_at: NotRequired[float]
    ended_at: NotRequired[float]
    settings: NotRequired[dict[str, Any]]  # rtt, browser
    server: NotRequired[dict[str, Any]]  # rtt: the echo server's options
    versions: NotRequired[dict[str, str | None]]  # abuse: node, ws, express
    browser: NotRequired[str]
    protocols: NotRequired[list[BrowserProtocol]]  # browser


class RttCell(TypedDict):
    """experiments.rtt: one mode (ws, http, ...) at one payload size."""

    mode: str
    size: int
    ws_impl: str
    truncated: bool
    wall_s: float
    server_cpu_us_per_rt: float
    client_cpu_us_per_rt: float
    rtt_us_count: float
    rtt_us_mean: float
    rtt_us_min: float
    rtt_us_max: float
    rtt_us_p50: float
    rtt_us_p90: float
    rtt_us_p99: float
    rtt_us_p99_9: float


class CompressionCell(TypedDict):
    """experiments.compression: one payload kind and size, with or without deflate."""

    kind: str
    payload: str
    size: int
    deflate: bool
    extensions: str | None
    events: int
    app_bytes_per_event: float
    wire_bytes_per_event: float
    wire_vs_app: float
    server_cpu_s_per_1k_events: float
    cpu_scope: str


class WebTransportCell(TypedDict):
    """experiments.webtransport: one way of carrying the feed (WebTransport stream or datagrams,
    or WebSocket) to ``sessions`` clients on a fresh server process."""

    kind: str
    cell: str
    sessions: int
    rate: float
    size: int
    duration_s: float
    deliveries: int
    lost: int  # seq holes the clients saw in the window (datagrams only, unless a bug)
    server_dropped: int  # datagrams the server did not send (too big, over budget)
    reconnects: int
    server_cpu_s_per_1k_deliveries: float
    server_rss_per_session_bytes: float
    latency_ms_p50: float
    latency_ms_p99: float
    latency_ms_max: float
    cpu_scope: str
    generator_cpu_pct: float  # this process (every client) over the window, % of one core
    generator_bound: bool


class AbuseCell(TypedDict):
    """experiments.abuse: one probe; per target its answer and the record behind it."""

    probe: str
    item: int
    attack: str
    expected: str
    pushlab: NotRequired[str]
    pushlab_detail: NotRequired[dict[str, Any]]
    node: NotRequired[str]
    node_detail: NotRequired[dict[str, Any]]


class CpuProfileCell(Delivery, total=False):
    """experiments.cpu_profile: a bench-like cell plus where perf saw its CPU go."""

    cell: typing.Required[str]
    status: typing.Required[str]
    reason: str
    server: str
    transport: str
    subscribers: int
    rate: float
    server_info: dict[str, Any]
    perf_samples: int
    kernel_pct: float
    dso_pct: dict[str, float]
    top_symbols: list[Any]


class ClusterSetup(TypedDict):
    """One cluster-bench configuration (experiments.cluster_bench.CELLS)."""

    name: str
    via: str  # direct | nginx
    instances: int
    broker: str  # memory:// | redis


class ClusterBenchCell(ClusterSetup):
    """experiments.cluster_bench: direct vs nginx, memory vs Redis, 1 vs 3 instances."""

    subscribers: int
    events: int
    rate: float
    burst: int
    latency_ms_count: float
    latency_ms_mean: float
    latency_ms_min: float
    latency_ms_max: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_p99_9: float
    publish_per_s: float
    deliveries_per_s: float
    burst_complete: bool


class ClusterFaultCell(TypedDict, total=False):
    """experiments.failover via ``pushlab cluster faults``: one fault against one transport."""

    fault: typing.Required[str]
    transport: typing.Required[str]
    clients: int
    lost: int
    duplicates_delivered: int
    duplicates_dropped: int
    silent_gaps: int
    gaps_announced: int
    reconnects: int
    reconnected_clients: int
    resume_ms_count: float
    resume_ms_mean: float
    resume_ms_min: float
    resume_ms_max: float
    resume_ms_p50: float
    resume_ms_p90: float
    resume_ms_p99: float
    resume_ms_p99_9: float
    max_stall_ms_count: float
    max_stall_ms_mean: float
    max_stall_ms_min: float
    max_stall_ms_max: float
    max_stall_ms_p50: float
    max_stall_ms_p90: float
    max_stall_ms_p99: float
    max_stall_ms_p99_9: float
    latency_ms_count: float
    latency_ms_mean: float
    latency_ms_min: float
    latency_ms_max: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_p99_9: float
    reconnect_ms_count: float
    reconnect_ms_mean: float
    reconnect_ms_min: float
    reconnect_ms_max: float
    reconnect_ms_p50: float
    reconnect_ms_p90: float
    reconnect_ms_p99: float
    reconnect_ms_p99_9: float
    unannounced_loss_clients: int  # only after a Redis data loss (a new seq epoch)
    published: int
    errors_retried: int
    last_seq: int
    seq_resets: int


class PubsubLossCell(TypedDict):
    """experiments.pubsub_loss: plain pub/sub vs pushlab Streams across a subscriber outage."""

    design: str
    down_ms: float
    published: int
    received: int
    lost: int
    duplicates: int


class BrowserCell(TypedDict, total=False):
    """experiments.browser_run: a feed transport in Chromium, or the whiteboard's stroke acks."""

    kind: typing.Required[str]  # feed | whiteboard_ack | streams
    transport: typing.Required[str]
    protocol: str  # --protocols entry: direct | h1 | h2 (BrowserProtocol.name)
    next_hop_protocol: str  # what Chromium negotiated for the page: http/1.1 | h2
    streams: int  # streams: EventSources the page opened at once
    streams_open: int  # ... of which opened within the window
    streams_waiting: int  # ... still CONNECTING after it (HTTP/1.1: 6 per host)
    open_ms_max: float  # time from page start to the last stream's open
    first_event_ms_count: float  # first-event latency of each open stream (receive - ts_ns)
    first_event_ms_mean: float
    first_event_ms_min: float
    first_event_ms_max: float
    first_event_ms_p50: float
    first_event_ms_p90: float
    first_event_ms_p99: float
    first_event_ms_p99_9: float
    events: int
    events_per_s: float
    payload_bytes_per_event: float
    requests_per_event: float
    reconnects: int
    gaps: int
    duplicates: int
    no_loss: bool
    wire_bytes_per_event: float  # poll and long-poll only
    latency_ms_count: float
    latency_ms_mean: float
    latency_ms_min: float
    latency_ms_max: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_p99_9: float
    ack_ms_count: float
    ack_ms_mean: float
    ack_ms_min: float
    ack_ms_max: float
    ack_ms_p50: float
    ack_ms_p90: float
    ack_ms_p99: float
    ack_ms_p99_9: float


# ---------------------------------------------------------------------------------------------
# The connection ladder and the reconnect storm (experiments.ladder, experiments.storm)


class RungParams(TypedDict):
    """One rung (experiments.ladder.cells.Rung.as_dict): server, transport, connections."""

    server: str  # python | node | workers
    transport: str  # ws | sse | long-poll
    n: int
    sse_impl: str  # python SSE only, else ""
    workers: int
    name: str


class LadderCell(RungParams, total=False):
    """experiments.ladder.run.measure: ``n`` idle connections on a fresh server."""

    tags: typing.Required[list[str]]  # ["ladder"]
    status: typing.Required[str]  # ok | partial | error
    error: str
    server_pid: int
    redis_prefix: str  # workers: the run's Redis keys
    server_env: dict[str, str]  # pushlab: PUSHLAB_* settings off their defaults (no secret)
    server_rss_mb_before: float
    holders: int
    connects_in_flight: int  # at once, over all holders (Params.connects_in_flight)
    connected: int
    connect_errors: dict[str, int]  # reason -> connections
    server_evicted_at_least: int  # 503s at the server's cap of pending heads (its log)
    connect_s: float
    handshakes_per_s: float
    connect_server_cpu_s: float
    connect_generator_cpu_pct: float
    server_held: int | None  # the server's own count; None when it cannot say (node, workers)
    open: int
    server_rss_mb: float
    rss_kib_per_conn: float
    tcp_mem_kib_per_conn: float
    tcp_inuse_delta: int
    slab_kib_per_conn: float
    worker_open: list[int]  # workers: established connections per worker
    idle_s: float
    idle_server_cpu_pct: float
    idle_generator_cpu_pct: float
    healthz_ms_p50: float
    healthz_ms_p99: float
    healthz_ms_max: float
    healthz_probes: int
    broadcast_got: int
    broadcast_ms_p50: float
    broadcast_ms_p99: float
    broadcast_ms_last: float
    open_after: int


class StormCell(RungParams, total=False):
    """experiments.storm.storm_cell: kill a server under ``n`` reconnecting clients, restart."""

    jitter: typing.Required[bool]
    status: typing.Required[str]  # ok | partial | error
    error: str
    rate: float
    outage_s: float
    history_survives: bool
    connected: int
    restart_listen_s: float
    down_s: float
    back: int
    resumed: int
    back_s_p50: float
    back_s_p99: float
    resumed_s_p50: float
    resumed_s_p99: float
    lost: int
    duplicates: int
    gaps: int
    connect_attempts: int
    opens: int
    startup_server_cpu_s: float
    storm_server_cpu_s: float
    storm_wall_s: float
    storm_server_cpu_pct_peak: float
    storm_server_cpu_pct_mean: float


# Which cell record a results folder holds, by the name after its timestamp
# (``<UTC>_<name>``, ``-N`` suffix dropped); any other name is a bench profile. A new experiment
# declares its cell TypedDict above (in its own section) and its folder name here; new figures
# of the bench go into the mixin that writes them (Delivery, LocustFigures, IdleFigures) or a
# new mixin added to BenchCell's bases.
CELL_KINDS: dict[str, type[Mapping[str, object]]] = {
    "rtt": RttCell,
    "compression": CompressionCell,
    "abuse": AbuseCell,
    "cpu-profile": CpuProfileCell,
    "cluster-bench": ClusterBenchCell,
    "cluster-faults": ClusterFaultCell,
    "cluster-pubsub-loss": PubsubLossCell,
    "browser": BrowserCell,
    "ladder": LadderCell,
    "storm": StormCell,
    "webtransport": WebTransportCell,
}

# ---------------------------------------------------------------------------------------------
# Checking saved records

R = TypeVar("R", bound=Mapping[str, object])


def check(record: type[R], value: object, where: str) -> R:
    """``value`` as a ``record`` after checking its keys (and those of nested records).

    Only keys are checked, not value types: JSON already fixed those when the run was written.
    """
    if not isinstance(value, dict):
        raise RecordError(f"{where}: expected an object ({record.__name__}), got {value!r:.60}")
    required: frozenset[str] = getattr(record, "__required_keys__")  # noqa: B009
    known = record_keys(record)
    missing = [k for k in required if k not in value]
    unknown = [k for k in value if k not in known]
    if missing:
        raise RecordError(f"{where}: missing key {sorted(missing)[0]!r} ({record.__name__})")
    if unknown:
        raise RecordError(
            f"{where}: unknown key {unknown[0]!r} ({record.__name__}); "
            "declare it in experiments/records.py"
        )
    for key, hint in typing.get_type_hints(record).items():
        if key in value:
            _check_nested(hint, value[key], f"{where}: {key}")
    return typing.cast(R, value)


def _check_nested(hint: object, value: object, where: str) -> None:
    if typing.is_typeddict(hint):
        check(typing.cast(type[Mapping[str, object]], hint), value, where)
    elif typing.get_origin(hint) is list and isinstance(value, list):
        (item,) = typing.get_args(hint)
        if typing.is_typeddict(item):
            for i, v in enumerate(value):
                _check_nested(item, v, f"{where}[{i}]")


def record_keys(record: type[Mapping[str, object]]) -> frozenset[str]:
    """Every key a record declares, required or not (to check keys named at run time)."""
    required: frozenset[str] = getattr(record, "__required_keys__")  # noqa: B009
    optional: frozenset[str] = getattr(record, "__optional_keys__")  # noqa: B009
    return required | optional
