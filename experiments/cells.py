"""Running one cell against a server that is already up: asyncio load, idle memory, or Locust.

Each function returns the cell's measured figures as a flat dict (see results/README.md). The
measurement window is fixed in wall-clock time (``t0``/``t1``) and shared by the load generators,
the kernel byte counters and the CPU meters, so every per-event figure divides numbers that were
counted over the same interval.
"""

from __future__ import annotations

import contextlib
import json
import math
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from experiments import formulas, sockstats
from experiments.children import CpuMeter, rss_bytes, spawn, stop
from experiments.cpuclock import tree_run_delay_s
from experiments.matrix import Cell
from experiments.metrics import summarize
from experiments.schedule import schedule_figures

GENERATOR_BOUND_PCT = 90.0
# A server process at >= 90% of a core is at its limit: one event loop is one core (Node's and
# uvicorn's alike), so a flat-out figure is its capacity only when the server got here.
SERVER_BOUND_PCT = 90.0
# The Python ticker notices a pause within one burst plus its 50 ms wake-up (feed/ticker.py).
PAUSE_SETTLE_S = 0.2
PAUSE_TIMEOUT_S = 10.0
STOP_GRACE_S = 3.0
CDF_POINTS = (0, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.9, 100)


@dataclass(frozen=True)
class Target:
    """A running server: where it listens and which process to meter."""

    url: str
    port: int
    pid: int
    topic: str
    # The CA file that signed the server's certificate (https:// targets), for every client here.
    ca: str | None = None

    def verify(self) -> ssl.SSLContext | bool:
        """What the runner's own control calls verify the server with."""
        return ssl.create_default_context(cafile=self.ca) if self.ca else True


def _split(n: int, parts: int) -> list[int]:
    parts = max(1, min(parts, n))
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def _readline(proc: subprocess.Popen[str], what: str) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"load generator exited ({proc.wait()}) before {what}")
    return dict(json.loads(line))


def _send(proc: subprocess.Popen[str], obj: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(obj) + "\n")
    proc.stdin.flush()


def _sleep_until(t_ns: int) -> None:
    time.sleep(max(0.0, (t_ns - time.time_ns()) / 1e9))


def latency_figures(lat_ns: np.ndarray[Any, Any]) -> dict[str, Any]:
    """Percentiles (ms) and a compact CDF that plots can use without the raw samples."""
    ms = (lat_ns / 1e6).tolist()
    out: dict[str, Any] = {k: v for k, v in summarize(ms, "latency_ms_").items()}
    if ms:
        qs = np.percentile(np.asarray(ms), CDF_POINTS, method="inverted_cdf")
        out["latency_cdf"] = [[p / 100, float(q)] for p, q in zip(CDF_POINTS, qs, strict=True)]
    return out


def set_ticker(url: str, rate: float, verify: ssl.SSLContext | bool = True) -> dict[str, Any]:
    """``POST /admin/ticker?rate=``, which the Python server and the Node baseline both have.

    Over HTTP/1.1 always (a new connection per call; on an HTTP/2 server, ALPN ``http/1.1``):
    hypercorn 0.18 drops an h2 connection after a bodiless POST like this (servers/http2.py).
    """
    params = {"rate": f"{rate:g}"}
    r = httpx.post(
        f"{url}/admin/ticker", params=params, timeout=10.0, trust_env=False, verify=verify
    )
    if r.status_code != 200:
        raise RuntimeError(f"POST /admin/ticker?rate={rate:g} answered {r.status_code}: {r.text}")
    return dict(r.json())


def _published(url: str, verify: ssl.SSLContext | bool = True) -> int:
    r = httpx.get(f"{url}/healthz", timeout=10.0, trust_env=False, verify=verify)
    return int(r.json()["broker"]["published"])


def pause_ticker(url: str, verify: ssl.SSLContext | bool = True) -> int:
    """Pause the ticker and return the publish count once it stopped moving.

    Node stops before it answers; the Python ticker may finish a burst first, so the count must
    hold still for longer than that ticker needs to notice.
    """
    set_ticker(url, 0, verify)
    deadline = time.monotonic() + PAUSE_TIMEOUT_S
    last, since = _published(url, verify), time.monotonic()
    while time.monotonic() - since < PAUSE_SETTLE_S:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the ticker kept publishing {PAUSE_TIMEOUT_S:g} s after a pause")
        time.sleep(0.02)
        now = _published(url, verify)
        if now != last:
            last, since = now, time.monotonic()
    return last


def asyncio_cell(
    cell: Cell,
    target: Target,
    raw_dir: Path,
    on_window: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Subscribers on the lab's asyncio clients; all figures over one shared window.

    A ``preconnect`` cell pauses the ticker first and starts it at ``cell.rate`` only once every
    subscriber has its start cursor, so all of them see the same first event. ``on_window`` is
    told the window (``time.time_ns()`` bounds) as soon as it is set, before it opens.
    """
    procs: list[subprocess.Popen[str]] = []
    raws: list[Path] = []
    pre: dict[str, Any] = {}
    try:
        if cell.preconnect:
            pre["ticker_paused_at"] = pause_ticker(target.url, target.verify())
        for i, n in enumerate(_split(cell.subscribers, cell.generators)):
            raws.append(raw_dir / f"{cell.name}.gen{i}.npy")
            spec = {
                "transport": cell.transport, "url": target.url, "topic": target.topic,
                "subscribers": n, "client": cell.client_options(), "raw_path": str(raws[-1]),
                "cafile": target.ca,
            }  # fmt: skip
            argv = [sys.executable, "-m", "experiments.loadgen", json.dumps(spec)]
            spawn(argv, into=procs, pipes=True, log=raw_dir / f"{cell.name}.gen{i}.log")
        hello = [_readline(p, "connecting") for p in procs]
        connected = sum(h["connected"] for h in hello)
        if connected < cell.subscribers:
            # Measuring fewer subscribers than asked would mislabel every per-cell figure.
            errors = sorted({e for h in hello for e in h.get("errors", [])})
            raise RuntimeError(
                f"only {connected} of {cell.subscribers} subscribers connected: {errors}"
            )
        cursors = [int(h[k]) for h in hello for k in ("cursor_min", "cursor_max")
                   if h.get(k) is not None]  # fmt: skip
        if cursors:
            pre |= {"start_cursor_min": min(cursors), "start_cursor_max": max(cursors)}
        if cell.preconnect:
            set_ticker(target.url, cell.rate, target.verify())
        t0 = time.time_ns() + int(cell.warmup_s * 1e9)
        t1 = t0 + int(cell.duration_s * 1e9)
        for p in procs:
            _send(p, {"cmd": "window", "t0_ns": t0, "t1_ns": t1})
        if on_window is not None:
            on_window(t0, t1)
        server_cpu, gen_cpu = CpuMeter([target.pid]), CpuMeter([p.pid for p in procs])
        _sleep_until(t0)
        s0, snap0 = _timed_snapshot(target.port)
        server_cpu.start()
        gen_cpu.start()
        machine0, wait0 = psutil.cpu_times(), _run_delay_s(target.pid)
        _sleep_until(t1)
        s1, snap1 = _timed_snapshot(target.port)
        (wall, s_cpu), (_, g_cpu) = server_cpu.stop(), gen_cpu.stop()
        server_wait_s = _run_delay_s(target.pid) - wait0
        machine_pct = _busy_pct(machine0, psutil.cpu_times())
        rss = rss_bytes(target.pid)
        results = [_readline(p, "its result")["result"] for p in procs]
        stamps = [row for r in results for row in r.pop("stamps", [])]
        for p in procs:
            _send(p, {"cmd": "stop"})
        # A generator still draining a flat-out backlog is stopped by the finally below; the
        # figures are already in, so one short shared grace period is enough.
        grace = time.monotonic() + STOP_GRACE_S
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.0, grace - time.monotonic()))
    finally:
        if cell.preconnect:
            # Stop the flat-out load before anything else runs on this server or stops it.
            with contextlib.suppress(Exception):
                set_ticker(target.url, 0, target.verify())
        for p in procs:
            stop(p)
    rows, answers = _gather(raws, raw_dir / f"{cell.name}.npy")
    recv, done = rows[:, 0], answers[:, 0]
    out = _merge(results)
    out.update(connected=connected, window_s=wall, machine_cpu_pct=machine_pct, **pre)
    # Runnable but not running: how much CPU the server was denied, the sign of a starved one.
    out["server_wait_pct"] = 100 * server_wait_s / wall
    if cell.preconnect:
        out["preconnected"] = _preconnected(out)
    out.update(latency_figures(rows[(recv >= t0) & (recv < t1), 1]))
    out.update(schedule_figures(stamps, cell.rate, t0, t1))
    traffic = sockstats.delta(snap0, snap1)
    if cell.proto == "h3":
        # QUIC is UDP: no kernel byte counters per socket; the generators counted the UDP
        # payload of their QUIC connections over [t0, t1) (clients/_h3.py, loadgen).
        s0, s1 = t0, t1
        traffic = sockstats.Traffic(
            up=out.pop("udp_up_bytes"),
            down=out.pop("udp_down_bytes"),
            connections=out.pop("udp_connections"),
            closed=0,
        )
    # Events counted over exactly the interval the byte counters were read over.
    out["wire_window_events"] = int(((recv >= s0) & (recv < s1)).sum())
    in_span = (done >= s0) & (done < s1)
    out["wire_window_requests"] = int(in_span.sum())
    out["wire_window_empty"] = int(answers[in_span, 1].sum())
    out.update(
        _cpu_figures(
            s_cpu[target.pid] if target.pid in s_cpu else math.nan, g_cpu, wall, out["delivered"]
        )
    )
    out["server_rss_mb"] = rss / 2**20
    out.update(_wire_figures(cell, target, traffic, out))
    return out


def _preconnected(out: dict[str, Any]) -> bool:
    """Every subscriber started at the paused ticker's last event and first saw the next one."""
    lo, hi = out.get("start_cursor_min"), out.get("start_cursor_max")
    first = (out.get("first_seq_min"), out.get("first_seq_max"))
    return lo is not None and lo == hi and first == (lo + 1, lo + 1)


def _busy_pct(t0: Any, t1: Any) -> float:
    """The machine's busy share over an interval, in % of all cores (``psutil.cpu_times``: clock
    ticks of 10 ms, enough for a share of a whole window; process CPU is ``cpuclock``'s, in ns)."""
    idle = (t1.idle + getattr(t1, "iowait", 0.0)) - (t0.idle + getattr(t0, "iowait", 0.0))
    total = sum(t1) - sum(t0)
    return 100 * (1 - idle / total) if total > 0 else math.nan


def _gather(raws: list[Path], dest: Path) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Merge the generators' sample and response files into ``dest`` (+ ``.responses.npy``)."""
    parts: dict[str, list[np.ndarray[Any, Any]]] = {"": [], ".responses": []}
    for r in raws:
        for suffix, acc in parts.items():
            f = r.with_name(r.name.removesuffix(".npy") + suffix + ".npy")
            acc.append(np.load(f))
            f.unlink()
    out = []
    for suffix, acc in parts.items():
        arr = np.concatenate(acc) if acc else np.zeros((0, 2), np.int64)
        np.save(dest.with_name(dest.name.removesuffix(".npy") + suffix + ".npy"), arr)
        out.append(arr)
    return out[0], out[1]


def _timed_snapshot(port: int) -> tuple[int, sockstats.Snapshot]:
    """A byte-counter snapshot and the moment it stands for (middle of the ``ss`` call)."""
    before = time.time_ns()
    snap = sockstats.snapshot(port)
    return (before + time.time_ns()) // 2, snap


def _merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "generator": "asyncio",
        "errors": sorted({e for r in results for e in r["errors"]}),
    }
    for key, value in results[0].items():
        if key.endswith(("_min", "_max")):
            vals = [r[key] for r in results if r.get(key) is not None]
            out[key] = (min if key.endswith("_min") else max)(vals) if vals else None
        elif isinstance(value, int) and not isinstance(value, bool):
            out[key] = sum(int(r[key]) for r in results)
    return out


def _run_delay_s(pid: int) -> float:
    try:
        return tree_run_delay_s(pid)
    except ProcessLookupError:
        return math.nan


def _cpu_figures(
    server_s: float, gen: dict[int, float], wall: float, delivered: int
) -> dict[str, Any]:
    each = [100 * v / wall for v in gen.values()]
    gen_pct = max(each, default=math.nan)
    server_pct = 100 * server_s / wall
    return {
        "events_per_s": delivered / wall,
        "server_cpu_s": server_s,
        "server_cpu_pct": server_pct,
        "server_cpu_s_per_1k_events": 1000 * server_s / delivered if delivered else math.nan,
        "server_bound": bool(server_pct >= SERVER_BOUND_PCT),
        "generator_processes": len(each),
        "generator_cpu_pct": gen_pct,
        "generator_cpu_pct_each": each,
        "generator_cpu_s_per_1k_events": (
            1000 * sum(gen.values()) / delivered if delivered else math.nan
        ),
        "generator_bound": bool(gen_pct >= GENERATOR_BOUND_PCT),
    }


def _wire_figures(
    cell: Cell, target: Target, t: sockstats.Traffic, out: dict[str, Any]
) -> dict[str, Any]:
    n, delivered = out["wire_window_events"], out["delivered"]
    if not n or not delivered:
        return {"wire_closed_connections": t.closed}
    shape = formulas.Shape(
        event_len=out["event_bytes"] / delivered,
        seq_len=out["seq_digits"] / delivered,
        events=n,
        requests=out["wire_window_requests"],
        empty=out["wire_window_empty"],
        topic=target.topic,
        port=target.port,
        wait_s=float(cell.client_options().get("wait_s", 20.0)),
    )
    wire = (t.up + t.down) / n
    # Edge effect: the byte counters are read at two instants, while a request (polling) or an
    # event (push) can be in flight on each subscriber's socket; at each of the two readings one
    # such unit per subscriber can land on the other side from the events it carries.
    units = shape.requests if cell.transport in ("poll", "long-poll") else n
    edge_pct = 100 * 2 * cell.subscribers / max(units, 1)
    out = {
        "wire_edge_pct": edge_pct,
        "app_bytes_per_event": shape.event_len,
        "wire_up_bytes_per_event": t.up / n,
        "wire_down_bytes_per_event": t.down / n,
        "wire_down_segments_per_event": t.down_segments / n,
        "wire_bytes_per_event": wire,
        "wire_connections": t.connections,
        "wire_closed_connections": t.closed,
        "requests_per_event": out["requests"] / delivered,
        "empty_fraction": out["empty_responses"] / out["requests"] if out["requests"] else 0.0,
    }
    if cell.proto == "h1":
        # The framing formulas are HTTP/1.1 plaintext's; over TLS and HTTP/2 only the socket's
        # count stands (TLS records, HTTP/2 frame headers and HPACK have no formula here).
        f_up, f_down = formulas.per_event(cell.transport, shape)
        formula = f_up + f_down
        out |= {
            "formula_up_bytes_per_event": f_up,
            "formula_down_bytes_per_event": f_down,
            "formula_bytes_per_event": formula,
            "wire_vs_formula_pct": 100 * (wire - formula) / formula,
        }
    return out


def idle_cell(cell: Cell, target: Target, raw_dir: Path) -> dict[str, Any]:
    """Server memory per connection: RSS before and with ``subscribers`` idle connections open.

    The connections are spread over ``cell.generators`` processes (10,000 httpx clients take
    over a minute to open from one process on a busy 2-core machine).
    """
    time.sleep(0.3)
    before = rss_bytes(target.pid)
    # 10,000 handshakes take a minute or more on a busy 2-core machine.
    connect_s = max(30.0, cell.subscribers / 80)
    started: list[subprocess.Popen[str]] = []
    try:
        for i, n in enumerate(_split(cell.subscribers, cell.generators)):
            spec = {
                "transport": cell.transport, "url": target.url, "topic": target.topic,
                "idle": True, "subscribers": n, "client": cell.client_options(),
                "raw_path": str(raw_dir / f"{cell.name}.gen{i}.npy"),
                "connect_timeout_s": connect_s, "cafile": target.ca,
            }  # fmt: skip
            argv = [sys.executable, "-m", "experiments.loadgen", json.dumps(spec)]
            spawn(argv, into=started, pipes=True, log=raw_dir / f"{cell.name}.gen{i}.log")
        connected = sum(_readline(p, "connecting")["connected"] for p in started)
        deadline = time.monotonic() + connect_s
        # QUIC connections are UDP: ``ss -t`` does not see them; the generators' count stands
        # (each subscriber had its answer's head, so the server holds its request).
        h3 = cell.proto == "h3"
        while (
            not h3
            and len(sockstats.snapshot(target.port)) < cell.subscribers
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        time.sleep(max(0.3, cell.warmup_s))  # let the server finish setting up each subscription
        open_now = connected if h3 else len(sockstats.snapshot(target.port))
        after = rss_bytes(target.pid)
        for p in started:
            _send(p, {"cmd": "stop"})
    finally:
        for p in started:
            stop(p)
    return {
        "generator": "asyncio", "connected": connected, "idle_connections": open_now,
        "server_rss_mb_before": before / 2**20, "server_rss_mb": after / 2**20,
        "memory_per_connection_kb": (after - before) / open_now / 1024 if open_now else math.nan,
    }  # fmt: skip


def locust_cell(cell: Cell, target: Target, raw_dir: Path) -> dict[str, Any]:
    """The same feed through Locust headless (``experiments.locust_runner``, branch locust-node)."""
    try:
        from experiments.locust_runner import run_locust  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return {"status": "skipped", "reason": "experiments.locust_runner is not in this build"}
    meter = CpuMeter([target.pid])
    meter.start()
    summary: dict[str, Any] = run_locust(
        cell.transport, target.url, cell.subscribers, cell.duration_s,
        out_dir=raw_dir / f"{cell.name}.locust", topic=target.topic,
    )  # fmt: skip
    wall, cpu = meter.stop()
    delivered = int(summary.get("delivered", 0))
    server_s = cpu.get(target.pid, math.nan)
    out = dict(summary)
    out.update(
        server_cpu_s=server_s,
        server_cpu_s_per_1k_events=1000 * server_s / delivered if delivered else math.nan,
        server_rss_mb=rss_bytes(target.pid) / 2**20,
        window_s=wall,
        cpu_scope="whole Locust run (spawn to stop), not a steady-state window",
    )
    return out
