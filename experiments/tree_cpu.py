"""CPU of a process tree (a load generator and its workers) while it runs.

Samples every process of the tree and the whole machine every ``SAMPLE_EVERY_S``; the figures
are then taken over a window (when events were being delivered), so start-up does not count.
Per-process CPU is the kernel's CPU clock (``experiments.cpuclock``, ns); the machine's busy
share is psutil's ``cpu_times`` (``/proc/stat``, clock ticks of 10 ms: a window of a few seconds
on 2 cores holds hundreds of them).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from typing import Any

import psutil

from experiments.cpuclock import process_cpu_s

SAMPLE_EVERY_S = 0.5
TERM_GRACE_S = 5.0  # after SIGTERM at the hard timeout, before SIGKILL
# Pseudo-pids in the samples: busy and total CPU seconds of the whole machine (all cores).
MACHINE, MACHINE_TOTAL = -1, -2

Samples = dict[int, list[tuple[int, float]]]


def _busy_s(t: Any) -> float:
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def sample_tree_until_exit(proc: subprocess.Popen[bytes], deadline: float) -> tuple[Samples, bool]:
    """``{pid: [(wall_ns, cpu_seconds), ...]}`` for the whole tree, and whether it timed out."""
    samples: Samples = {}
    pids: set[int] = set()  # every member seen: one that exited keeps its samples so far
    while proc.poll() is None:
        if time.monotonic() > deadline:
            _stop(proc)
            return samples, True
        try:
            root = psutil.Process(proc.pid)
            for p in [root, *root.children(recursive=True)]:
                pids.add(p.pid)
        except psutil.Error:
            pass
        now = time.time_ns()
        busy = psutil.cpu_times()
        samples.setdefault(MACHINE, []).append((now, _busy_s(busy)))
        samples.setdefault(MACHINE_TOTAL, []).append((now, sum(busy)))
        for pid in pids:
            try:
                cpu = process_cpu_s(pid)
            except ProcessLookupError:
                continue
            samples.setdefault(pid, []).append((now, cpu))
        time.sleep(SAMPLE_EVERY_S)
    return samples, False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (Locust shuts down and writes its files), then SIGKILL to the group we started."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(TERM_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def cpu_figures(samples: Samples, first_ns: int, last_ns: int) -> dict[str, Any]:
    """Per process: mean and peak % of one core while events were being delivered; max of each.

    Start-up (imports, spawning) burns CPU before any delivery; averaging over the delivery
    window keeps it from being mistaken for load. ``machine_pct`` is how busy all cores were in
    that window: a generator far below 90 % on a saturated machine is starved, not idle.
    """
    means: list[float] = []
    peaks: list[float] = []
    machine = math.nan
    for pid, points in samples.items():
        inside = [pt for pt in points if first_ns <= pt[0] <= last_ns] if last_ns else []
        window = inside if len(inside) >= 2 else points
        if len(window) < 2 or pid == MACHINE_TOTAL:
            continue
        if pid == MACHINE:
            total = dict(samples[MACHINE_TOTAL])
            spent = total[window[-1][0]] - total[window[0][0]]
            machine = 100.0 * (window[-1][1] - window[0][1]) / spent if spent > 0 else math.nan
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
        "total_pct": round(sum(means), 1),
        "machine_pct": round(machine, 1),
        "processes": len([pid for pid in samples if pid >= 0]),
    }
