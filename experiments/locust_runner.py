"""Run a Locust feed driver headless as a subprocess and reduce what it wrote to one flat dict.

Locust monkey-patches sockets with gevent, so it never runs in this (possibly asyncio) process:
``run_locust`` starts ``locust`` from the venv next to ``sys.executable``, bounded by a hard
timeout, samples the CPU of every process of its tree (master and workers; see
:mod:`experiments.tree_cpu`), and reads two outputs: the ``--feed-summary`` JSON the locustfiles
write (exact counters and a latency histogram at three significant digits) and Locust's own
``--csv`` stats (cross-check; Locust rounds latency to whole milliseconds below 100 ms).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from experiments.tree_cpu import cpu_figures, sample_tree_until_exit
from servers.launch import free_port

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILES_DIR = Path(__file__).resolve().parent / "locustfiles"
LOCUSTFILES = {
    "ws": "websocket.py",
    "sse": "sse.py",
    "poll": "short_poll.py",
    "long-poll": "long_poll.py",
    "stream": "stream.py",
}
ALIASES = {"websocket": "ws", "short-poll": "poll", "short_poll": "poll", "long_poll": "long-poll"}
GENERATOR_BOUND_PCT = 90.0


class LocustRunError(RuntimeError):
    """Locust did not finish in time or left no results."""


def locust_bin() -> Path:
    """The ``locust`` script of the running interpreter's venv."""
    return Path(sys.executable).with_name("locust")


def locustfile(transport: str) -> Path:
    """The locustfile driving ``transport`` (one per ``feed.wire.contract.TRANSPORTS``)."""
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
        # Master and forked workers meet on a free loopback port, not Locust's fixed 5557: two
        # runs at once (a bench and a test) would otherwise join each other's workers.
        port = str(free_port())
        cmd += ["--processes", str(processes), "--master-bind-host", "127.0.0.1"]
        cmd += ["--master-bind-port", port, "--master-host", "127.0.0.1", "--master-port", port]
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
    hard_timeout_s: float | None = None,
) -> dict[str, Any]:
    """Drive ``users`` subscribers of ``topic`` at ``url`` for ``duration_s``; figures as a dict.

    ``locustfile_path`` replaces the transport's own locustfile (a variant built on the same
    base, e.g. in tests). ``hard_timeout_s`` (default: ``duration_s`` + 30 s + 5 s per process)
    bounds the whole run: past it Locust gets SIGTERM, then its process group SIGKILL. Raises
    :class:`LocustRunError` when Locust overruns that limit or writes no summary.

    Keys: latency and throughput come from the users' own summary (exact counts, latency at three
    significant digits, ``events_per_s`` over the span from first to last delivery);
    ``generator_cpu_pct`` is the busiest Locust process's mean % of one core over that span
    (``generator_bound`` at >= 90), ``generator_cpu_total_pct`` all of them together,
    ``machine_cpu_pct`` all cores (``machine_bound``: a starved generator, not an idle one);
    ``locust_processes`` counts the processes seen (master + workers), ``locust_workers`` the
    workers that reported; ``hub_blocked`` > 0 means a user blocked gevent's loop (only counted
    with ``LOCUST_FEED_MONITOR_HUB_MS`` in ``extra_env``); ``locust_csv_requests`` is Locust's
    own count (its CSV is written every second, so it can miss the last one).
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
    hard_timeout = hard_timeout_s or duration_s + 30.0 + 5.0 * processes
    started = time.monotonic()
    with (
        open(out_dir / "locust.stdout", "wb") as out,
        open(out_dir / "locust.stderr", "wb") as err,
    ):
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True
        )
        samples, timed_out = sample_tree_until_exit(proc, started + hard_timeout)
    elapsed = time.monotonic() - started
    if timed_out:
        raise LocustRunError(f"locust overran its {hard_timeout:.0f} s limit; killed ({out_dir})")
    summary_path = out_dir / "feed_summary.json"
    if not summary_path.exists():
        tail = (out_dir / "locust.stderr").read_text(errors="replace")[-2000:]
        raise LocustRunError(f"locust exited {proc.returncode} without a summary:\n{tail}")
    feed = json.loads(summary_path.read_text())
    cpu = cpu_figures(samples, feed.get("first_ns", 0), feed.get("last_ns", 0))
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
        "generator_cpu_total_pct": cpu["total_pct"],  # all Locust processes together
        "generator_bound": cpu["max_mean_pct"] >= GENERATOR_BOUND_PCT,
        "machine_cpu_pct": cpu["machine_pct"],
        "machine_bound": cpu["machine_pct"] >= GENERATOR_BOUND_PCT,
        "failures": max(feed["failures"], int(stats.get("Failure Count", 0) or 0)),
        "duplicates": feed["duplicates"],
        "gaps": feed["gaps"],
        "silent_gaps": feed["silent_gaps"],
        "reconnects": feed["reconnects"],
        "requests": feed["requests"],
        "empty_responses": feed["empty_responses"],
        "hub_blocked": feed["hub_blocked"],
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


def _aggregated_csv_row(path: Path) -> dict[str, str]:
    """The ``Aggregated`` row of Locust's ``*_stats.csv`` (empty when missing)."""
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("Name") == "Aggregated":
                return row
    return {}


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.locust_runner``: one Locust run against a running server."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m experiments.locust_runner")
    parser.add_argument("--transport", required=True, choices=sorted(LOCUSTFILES))
    parser.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--topic", default="ticks")
    parser.add_argument("--out", type=Path, required=True, help="folder for Locust's files")
    args = parser.parse_args(argv)
    result = run_locust(
        args.transport,
        args.url,
        args.users,
        args.seconds,
        processes=args.processes,
        out_dir=args.out,
        topic=args.topic,
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
