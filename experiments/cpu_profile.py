"""``python -m experiments.cpu_profile``: where a push server's CPU goes — kernel against user
space, by shared object and by symbol — sampled by Linux ``perf`` during a paced cell.

Each row (``--rows node:ws python:ws`` by default) runs one paced cell shaped like the ``perf``
profile's (``--subscribers`` x ``--rate`` events/s, 64-byte events, the lab's clients, every
subscriber connected before the ticker starts) through the bench's own runner, and
``perf record -e cpu-clock`` samples the server process over exactly the cell's window. The
clock is a software one: the 2-core VMs here expose no hardware counters (``perf stat`` says
"not supported"). Native frames only: CPython's time shows as ``_PyEval_EvalFrameDefault`` and
friends in ``libpython``, Node's as ``node`` and ``[JIT]``.

Writes ``results/<stamp>_cpu-profile/``: ``meta.json`` (parameters, machine), ``summary.json``
(per row the cell's figures plus ``perf_samples``, ``kernel_pct``, ``dso_pct`` and
``top_symbols``), ``raw/<cell>.perf.data`` (``perf report -i`` it for more).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from experiments import cells as run_cells
from experiments.matrix import PERF_CLIENT, Cell, paced_generators
from experiments.records import CpuProfileCell, check
from experiments.results import ResultsDir
from experiments.run import server, server_problem

_ROW = re.compile(r"^\s*([\d.]+)%\s+(.+?)\s*$")
_SAMPLES = re.compile(r"^# Samples: (\d+)([KM]?)", re.M)


@dataclass(frozen=True)
class ProfileParams:
    """What one run measures; saved as ``meta.json`` params."""

    rows: tuple[str, ...] = ("node:ws", "python:ws")
    subscribers: int = 200
    rate: float = 200.0
    warmup_s: float = 1.0
    duration_s: float = 6.0
    frequency_hz: int = 999
    top: int = 15


def perf_binary() -> str | None:
    """``perf`` (Debian's linux-perf), or None."""
    return shutil.which("perf")


def shares(report: str) -> list[tuple[str, float]]:
    """``(name, percent)`` rows of a ``perf report --stdio`` table (comments skipped)."""
    out = []
    for line in report.splitlines():
        if line.startswith("#"):
            continue
        m = _ROW.match(line)
        if m:
            out.append((m.group(2), float(m.group(1))))
    return out


def samples(report: str) -> int:
    """The sample count ``perf report`` prints in its header (it rounds to K or M above 999)."""
    m = _SAMPLES.search(report)
    if not m:
        return 0
    return int(m.group(1)) * {"": 1, "K": 1000, "M": 1_000_000}[m.group(2)]


def _report(perf: str, data: Path, key: str) -> str:
    return subprocess.run(
        [perf, "report", "-i", str(data), "--sort", key, "--stdio"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip


def summarize_perf(perf: str, data: Path, top: int) -> dict[str, Any]:
    """Kernel share, share per shared object and the ``top`` symbols of one recording."""
    by_dso = shares(_report(perf, data, "dso"))
    by_sym = _report(perf, data, "sym")
    return {
        "perf_samples": samples(by_sym),
        "kernel_pct": round(sum(p for name, p in by_dso if name.startswith("[kernel")), 2),
        "dso_pct": {name: p for name, p in by_dso if p >= 0.5},
        "top_symbols": [[name, p] for name, p in shares(by_sym)[:top]],
    }


class _Recorder:
    """Samples ``pid`` with ``perf record`` over the cell's window (see ``asyncio_cell``)."""

    def __init__(self, perf: str, pid: int, out: Path, hz: int) -> None:
        self.argv = [perf, "record", "-q", "-e", "cpu-clock", "-F", str(hz), "-p", str(pid)]
        self.argv += ["-o", str(out)]
        self.thread: threading.Thread | None = None
        self.error = ""

    def on_window(self, t0: int, t1: int) -> None:
        self.thread = threading.Thread(target=self._record, args=(t0, t1), daemon=True)
        self.thread.start()

    def _record(self, t0: int, t1: int) -> None:
        time.sleep(max(0.0, (t0 - time.time_ns()) / 1e9))
        span = f"{max(0.1, (t1 - time.time_ns()) / 1e9):.3f}"
        done = subprocess.run([*self.argv, "--", "sleep", span], capture_output=True, text=True)
        if done.returncode != 0:
            self.error = done.stderr.strip()[-300:]

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join(60)


def profile_row(row: str, p: ProfileParams, rd: ResultsDir, perf: str) -> CpuProfileCell:
    """One row: run its paced cell with ``perf`` on the server over the window."""
    kind, _, transport = row.partition(":")
    cell = Cell(transport, p.subscribers, p.rate, 64, server=kind, preconnect=True,
                generators=paced_generators(p.subscribers, p.rate),
                client=PERF_CLIENT.get(transport, {}),
                warmup_s=p.warmup_s, duration_s=p.duration_s, tags=("cpu-profile",))  # fmt: skip
    problem = server_problem(kind)
    if problem is not None:
        return {"cell": cell.name, "status": "skipped", "reason": problem}
    data = rd.raw(f"{cell.name}.perf.data")
    with server(cell, rd.raw(f"{cell.name}.server.log")) as (target, info):
        rec = _Recorder(perf, target.pid, data, p.frequency_hz)
        figures = run_cells.asyncio_cell(cell, target, rd.path / "raw", on_window=rec.on_window)
        rec.join()
    out = {"cell": cell.name, "status": "ok", "server": kind, "transport": transport,
           "subscribers": p.subscribers, "rate": p.rate, "server_info": info,
           **figures}  # fmt: skip
    if rec.error or not data.exists():
        out |= {"status": "failed", "reason": f"perf record: {rec.error or 'no output'}"}
    else:
        out |= summarize_perf(perf, data, p.top)
    return check(CpuProfileCell, out, f"cell {cell.name}")


def run(p: ProfileParams, root: Path | str = "results") -> Path:
    """Profile every row; returns the results folder."""
    perf = perf_binary()
    if perf is None:
        raise SystemExit("perf is not installed (Debian's linux-perf; `make system` installs it)")
    rd = ResultsDir.create("cpu-profile", root)
    rd.write_meta(asdict(p))
    for row in p.rows:
        rd.add_cell(profile_row(row, p, rd, perf))
    return rd.path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = ProfileParams()
    parser.add_argument("--rows", nargs="+", default=list(d.rows), help="server:transport ...")
    parser.add_argument("--subscribers", type=int, default=d.subscribers)
    parser.add_argument("--rate", type=float, default=d.rate)
    parser.add_argument("--duration", type=float, default=d.duration_s)
    parser.add_argument("--out", default="results")
    a = parser.parse_args(argv)
    p = ProfileParams(tuple(a.rows), a.subscribers, a.rate, duration_s=a.duration)
    path = run(p, a.out)
    for c in json.loads((path / "summary.json").read_text())["cells"]:
        print(c["cell"], c["status"], c.get("kernel_pct"), "% kernel;", c.get("dso_pct"))
    print(path)


if __name__ == "__main__":
    main()
