"""Run a Locust feed driver headless as a subprocess and reduce what it wrote to one flat dict.

Locust monkey-patches sockets with gevent, so it never runs in this (possibly asyncio) process:
``run_locust`` starts ``locust`` from the venv next to ``sys.executable``, bounded by a hard
timeout, samples the CPU of every process of its tree (master and workers) with psutil, and reads
two outputs: the ``--feed-summary`` JSON the locustfiles write (exact counters and a latency
histogram at three significant digits) and Locust's own ``--csv`` stats (cross-check; Locust
rounds latency to whole milliseconds below 100 ms).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILES_DIR = Path(__file__).resolve().parent / "locustfiles"
LOCUSTFILES = {
    "ws": "websocket.py",
    "sse": "sse.py",
    "poll": "short_poll.py",
    "long-poll": "long_poll.py",
}
ALIASES = {"websocket": "ws", "short-poll": "poll", "short_poll": "poll", "long_poll": "long-poll"}
GENERATOR_BOUND_PCT = 90.0
SAMPLE_EVERY_S = 0.5


class LocustRunError(RuntimeError):
    """Locust did not finish in time or left no results."""


def locust_bin() -> Path:
    """The ``locust`` script of the running interpreter's venv."""
    return Path(sys.executable).with_name("locust")


def locustfile(transport: str) -> Path:
    """The locustfile driving ``transport`` (``ws``, ``sse``, ``poll``, ``long-poll``)."""
    key = ALIASES.get(transport, transport)
    if key not in LOCUSTFILES:
        raise ValueError(f"unknown transport {transport!r}; one of {sorted(LOCUSTFILES)}")
    return LOCUSTFILES_DIR / LOCUSTFILES[key]


def locust_command(
    transport: str,
    url: str,
    users: int,
    duration_s: float,
    *,
    processes: int,
    spawn_rate: float | None,
    out_dir: Path,
    path: Path | None = None,
) -> list[str]:
    """The command line; ``--stop-timeout 0`` ends users at once so workers report in time."""
    cmd = [
        str(locust_bin()),
        "-f",
        str(path or locustfile(transport)),
        "--headless",
        "--host",
        url,
        "--users",
        str(users),
        "--spawn-rate",
        f"{spawn_rate if spawn_rate is not None else max(users, 1):g}",
        "--run-time",
        f"{max(1, math.ceil(duration_s))}s",
        "--stop-timeout",
        "0",
        "--csv",
        str(out_dir / "locust"),
        "--only-summary",
        "--exit-code-on-error",
        "0",
        "--feed-summary",
        str(out_dir / "feed_summary.json"),
    ]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    return cmd


def run_locust(
    transport: str,
    url: str,
    users: int,
    duration_s: float,
    *,
    processes: int = 1,
    spawn_rate: float | None = None,
    out_dir: Path,
    topic: str = "ticks",
    extra_env: dict[str, str] | None = None,
    locustfile_path: Path | None = None,
) -> dict[str, Any]:
    """Drive ``users`` subscribers of ``topic`` at ``url`` for ``duration_s``; figures as a dict.

    ``locustfile_path`` replaces the transport's own locustfile (a variant built on the same
    base, e.g. in tests). Raises :class:`LocustRunError` when Locust overruns its hard timeout
    or writes no summary.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = locust_command(
        transport,
        url,
        users,
        duration_s,
        processes=processes,
        spawn_rate=spawn_rate,
        out_dir=out_dir,
        path=locustfile_path,
    )
    env = {**os.environ, "LOCUST_FEED_TOPIC": topic, **(extra_env or {})}
    hard_timeout = duration_s + 30.0 + 5.0 * processes
    started = time.monotonic()
    with (
        open(out_dir / "locust.stdout", "wb") as out,
        open(out_dir / "locust.stderr", "wb") as err,
    ):
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True
        )
        samples, timed_out = _sample_cpu_until_exit(proc, started + hard_timeout)
    elapsed = time.monotonic() - started
    if timed_out:
        raise LocustRunError(f"locust overran its {hard_timeout:.0f} s limit; killed ({out_dir})")
    summary_path = out_dir / "feed_summary.json"
    if not summary_path.exists():
        tail = (out_dir / "locust.stderr").read_text(errors="replace")[-2000:]
        raise LocustRunError(f"locust exited {proc.returncode} without a summary:\n{tail}")
    feed = json.loads(summary_path.read_text())
    cpu = _cpu_figures(samples, feed.get("first_ns", 0), feed.get("last_ns", 0))
    stats = _aggregated_csv_row(out_dir / "locust_stats.csv")
    return {
        "generator": "locust",
        "transport": ALIASES.get(transport, transport),
        "users": users,
        "delivered": feed["delivered"],
        "latency_ms_p50": feed["latency_ms_p50"],
        "latency_ms_p90": feed["latency_ms_p90"],
        "latency_ms_p99": feed["latency_ms_p99"],
        "latency_ms_max": feed["latency_ms_max"],
        "events_per_s": feed["events_per_s"],
        "bytes_per_event": feed["bytes_per_event"],
        "generator_cpu_pct": cpu["max_mean_pct"],
        "generator_cpu_peak_pct": cpu["max_peak_pct"],
        "generator_bound": cpu["max_mean_pct"] >= GENERATOR_BOUND_PCT,
        "failures": max(feed["failures"], int(stats.get("Failure Count", 0) or 0)),
        "duplicates": feed["duplicates"],
        "gaps": feed["gaps"],
        "silent_gaps": feed["silent_gaps"],
        "reconnects": feed["reconnects"],
        "requests": feed["requests"],
        "empty_responses": feed["empty_responses"],
        "users_delivering": feed["users_delivering"],
        "peak_open_sessions": feed["peak_open_sessions"],
        "locust_processes": cpu["processes"],
        "locust_workers": feed.get("workers", 0),
        "locust_csv_requests": int(stats.get("Request Count", 0) or 0),
        "delivery_span_s": feed["span_s"],
        "wall_s": elapsed,
        "exit_code": proc.returncode,
        "command": shlex.join(cmd),
    }


def _sample_cpu_until_exit(
    proc: subprocess.Popen[bytes], deadline: float
) -> tuple[dict[int, list[tuple[int, float]]], bool]:
    """``{pid: [(wall_ns, cpu_seconds), ...]}`` for the whole tree, and whether it timed out."""
    samples: dict[int, list[tuple[int, float]]] = {}
    handles: dict[int, psutil.Process] = {}
    while proc.poll() is None:
        if time.monotonic() > deadline:
            _stop(proc)
            return samples, True
        try:
            root = psutil.Process(proc.pid)
            for p in [root, *root.children(recursive=True)]:
                handles.setdefault(p.pid, p)
        except psutil.Error:
            pass
        now = time.time_ns()
        for pid, p in handles.items():
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            samples.setdefault(pid, []).append((now, t.user + t.system))
        time.sleep(SAMPLE_EVERY_S)
    return samples, False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (Locust shuts down and writes its files), then SIGKILL to the group we started."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _cpu_figures(
    samples: dict[int, list[tuple[int, float]]], first_ns: int, last_ns: int
) -> dict[str, Any]:
    """Per process: mean and peak % of one core while events were being delivered; max of each.

    Start-up (imports, spawning) burns CPU before any delivery; averaging over the delivery
    window keeps it from being mistaken for load.
    """
    means: list[float] = []
    peaks: list[float] = []
    for points in samples.values():
        inside = [pt for pt in points if first_ns <= pt[0] <= last_ns] if last_ns else []
        window = inside if len(inside) >= 2 else points
        if len(window) < 2:
            continue
        rates = [
            100.0 * (c1 - c0) / ((t1 - t0) / 1e9)
            for (t0, c0), (t1, c1) in zip(window, window[1:], strict=False)
            if t1 > t0
        ]
        span_s = (window[-1][0] - window[0][0]) / 1e9
        means.append(100.0 * (window[-1][1] - window[0][1]) / span_s if span_s > 0 else 0.0)
        peaks.append(max(rates, default=0.0))
    return {
        "max_mean_pct": round(max(means, default=0.0), 1),
        "max_peak_pct": round(max(peaks, default=0.0), 1),
        "processes": len(samples),
    }


def _aggregated_csv_row(path: Path) -> dict[str, str]:
    """The ``Aggregated`` row of Locust's ``*_stats.csv`` (empty when missing)."""
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("Name") == "Aggregated":
                return row
    return {}
