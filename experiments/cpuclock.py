"""CPU time of a process, or a process tree, in nanoseconds: the one way the lab reads it.

Linux keeps a CPU clock per process (``clock_gettime`` on the clock id that
``clock_getcpuclockid(3)`` would return, built here as the kernel does): the on-CPU time, user
plus system, of every thread the process has had, threads that already exited included, in
nanoseconds, brought up to date for threads running at the moment of the read. Any process's
clock can be read, no ptrace rights needed.

The alternatives lose something: ``/proc/PID/stat`` (psutil's ``cpu_times``) counts in clock
ticks of 10 ms, so a short cell can read 0; ``/proc/PID/task/*/schedstat`` is in ns but lists
live threads only (an exited thread's time vanishes from the sum) and lags a running thread by
its current slice; ``/proc/PID/schedstat`` is the main thread's line alone, not the process's.

A tree is the process and its descendants alive at the moment of the read. A descendant that
exits between two reads takes its time since the first read with it (once reaped, the kernel
keeps it only in the parent's ``cutime``/``cstime``, in clock ticks); the trees the lab measures
(servers and load generators) keep their processes for the whole window.
"""

from __future__ import annotations

import contextlib
import os
import time

import psutil

_CPUCLOCK_SCHED = 2  # include/linux/posix-timers.h: the clock that counts sum_exec_runtime


def process_cpu_ns(pid: int) -> int:
    """On-CPU ns of ``pid`` (all its threads, exited ones too); ProcessLookupError when gone."""
    try:
        return time.clock_gettime_ns(((~pid) << 3) | _CPUCLOCK_SCHED)
    except OSError as e:
        raise ProcessLookupError(pid) from e


def process_cpu_s(pid: int) -> float:
    """:func:`process_cpu_ns` in seconds."""
    return process_cpu_ns(pid) / 1e9


def tree_run_delay_s(pid: int) -> float:
    """Seconds the live threads of ``pid`` and its descendants spent runnable but waiting for a
    CPU (the second field of ``/proc/PID/task/*/schedstat``, ns); ProcessLookupError if gone.

    This is the direct sign of a starved process: CPU time says how much work it did, this says
    how long it was ready to do more and the scheduler ran something else (on this machine, the
    load generators). Live threads only; the servers the lab measures keep theirs for the window.
    """
    try:
        members = [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    except psutil.NoSuchProcess as e:
        raise ProcessLookupError(pid) from e
    total = 0
    for member in members:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for task in os.scandir(f"/proc/{member}/task"):
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    with open(f"{task.path}/schedstat") as f:
                        total += int(f.read().split()[1])
    return total / 1e9


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and its live descendants; ProcessLookupError if ``pid`` is gone."""
    try:
        members = [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    except psutil.NoSuchProcess as e:
        raise ProcessLookupError(pid) from e
    total = process_cpu_ns(pid)
    for child in members[1:]:
        with contextlib.suppress(ProcessLookupError):
            total += process_cpu_ns(child)
    return total / 1e9
