"""``pushlab storm``: kill a server under N connected clients, start it again, time the comeback.

    pushlab storm                           # 10,000 WS, SSE, /stream; pushlab and Node; jittered
    pushlab storm --herd                    # each cell again without jitter: the thundering herd
    pushlab storm -n 300 --transport ws     # the mechanics (tests)

Per cell: a server on a fixed port (pushlab with its ticker on the Redis broker under its own
key prefix, so seqs and history survive the restart; Node keeps history in memory, so its row is
the handshake part only); ``n`` reconnecting clients (:mod:`experiments.ladder.holder`, several
processes and source addresses) that back off as the project's clients do
(``clients.retry.RetryPolicy``: full jitter) and resume from their last seq. Once every client
has an event, SIGKILL the server, wait ``outage_s``, start it again on the same port, and read:
seconds from the restart until 99% of clients are back (answer head) and resumed (first event
after it), the server's CPU over that span, and lost, duplicated and announced-gap events (both
0 when history covers the outage). ``--herd`` adds each cell with the un-jittered delays (0.1, 0.2,
0.4 ... s): every client knocks at the same moments.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from experiments.cpuclock import tree_cpu_s
from experiments.ladder.cells import Rung
from experiments.ladder.run import Holders, Params, Server, sources
from experiments.matrix import NODE_TRANSPORTS
from experiments.processes import delete_prefix
from experiments.results import ResultsDir
from feed.wire.contract import TRANSPORTS

QUORUM = 0.99
# The transports that hold a stream open across events, so a restart cuts every client at once.
# Left out: polls, whose clients are not connected between answers (a restart is a refused
# request or two, not a storm of reconnects and resumes).
STORM_TRANSPORTS = tuple(t for t in TRANSPORTS if t not in ("poll", "long-poll"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, default=10_000, help="connected clients")
    parser.add_argument(
        "--transport", choices=STORM_TRANSPORTS, action="append",
        help=f"default: {', '.join(STORM_TRANSPORTS)}",
    )  # fmt: skip
    parser.add_argument("--server", choices=("python", "node"), action="append")
    parser.add_argument(
        "--herd", action="store_true", help="each cell again without jitter (thundering herd)"
    )
    parser.add_argument("--no-jitter", action="store_true", help="only the herd runs")
    # 10k clients x 1 event/s is 10k deliveries/s: within a loaded server's reach, so the
    # comeback, not the steady feed, is what the storm measures.
    parser.add_argument("--rate", type=float, default=1.0, help="ticker events/s")
    parser.add_argument("--outage-s", type=float, default=1.0, help="down time before restart")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="give up the comeback")
    parser.add_argument("--per-holder", type=int, default=5_000)
    parser.add_argument("--out", type=Path, default=Path("results"), help="results root folder")


def storm_cell(
    rung: Rung, params: Params, args: argparse.Namespace, raw: Path, addrs: Any,
    jitter: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """One kill-and-restart under ``rung.n`` clients (see the module docstring)."""
    cell: dict[str, Any] = rung.as_dict() | {
        "jitter": jitter, "rate": args.rate, "outage_s": args.outage_s,
        # Node's history is in memory: after its restart seqs start over, so its loss and
        # duplicate counts say nothing; its row is the handshake part.
        "history_survives": rung.server == "python",
    }  # fmt: skip
    server = Server(rung, params, rate=args.rate)
    prefix = f"{params.redis_prefix}-storm-{os.getpid()}-{time.time_ns()}"
    if rung.server == "python":
        server.env = {"PUSHLAB_BROKER": params.redis_url, "PUSHLAB_REDIS_PREFIX": prefix}
    holders = Holders()
    try:
        server.start(raw)
        spec = {
            "transport": rung.transport, "port": server.port, "reconnect": True,
            "jitter": jitter,
        }  # fmt: skip
        holders.start(spec, rung.n, params.per_holder, addrs, params.connects_in_flight)
        opened = holders.read()
        cell["connected"] = sum(o["connected"] for o in opened)
        _wait_all_fed(holders, rung.n, args.timeout_s)
        t_kill = time.time_ns()
        server.kill()
        time.sleep(args.outage_s)
        t_start = time.time_ns()
        server.start(raw)
        cpu = CpuSampler(server.pid)
        t_ready = time.time_ns()
        answers = _wait_comeback(holders, t_kill, rung.n, args.timeout_s, rung.server == "python")
        cpu.stop()
        time.sleep(1.0)  # a last event on every resumed stream before counting
        answers = holders.ask({"cmd": "storm", "since_ns": t_kill})
        cell |= figures(answers, t_kill, t_start, t_ready, rung.n)
        cell |= cpu.figures(t_start)
        back = [x for a in answers for x in a["back_ns"] if x is not None]
        np.save(raw / f"storm-{rung.name}-{'jitter' if jitter else 'herd'}.npy",
                np.asarray(sorted(back), dtype=np.int64) - t_start)  # fmt: skip
        cell["status"] = "ok" if cell["back"] >= QUORUM * rung.n else "partial"
    except Exception as exc:  # noqa: BLE001 - a cell that breaks says why
        cell |= {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        holders.stop()
        server.stop()
        if rung.server == "python":
            with contextlib.suppress(Exception):
                delete_prefix(params.redis_url, prefix)
    return cell


def _wait_all_fed(holders: Holders, n: int, timeout_s: float) -> None:
    """Until every client has had an event (its resume point), bounded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answers = holders.ask({"cmd": "storm", "since_ns": 0})
        if sum(x is not None for a in answers for x in a["resumed_ns"]) >= n:
            return
        time.sleep(0.2)
    raise TimeoutError("not every client received an event before the kill")


def _wait_comeback(
    holders: Holders, t_kill: int, n: int, timeout_s: float, resume: bool
) -> list[dict[str, Any]]:
    key = "resumed_ns" if resume else "back_ns"
    deadline = time.monotonic() + timeout_s
    while True:
        answers = holders.ask({"cmd": "storm", "since_ns": t_kill})
        done = sum(x is not None for a in answers for x in a[key])
        if done >= QUORUM * n or time.monotonic() > deadline:
            return answers
        time.sleep(0.1)


def figures(
    answers: list[dict[str, Any]], t_kill: int, t_start: int, t_ready: int, n: int
) -> dict[str, Any]:
    """Comeback times (from the restart's spawn), loss and duplicates, over all holders."""
    back = sorted((x - t_start) / 1e9 for a in answers for x in a["back_ns"] if x is not None)
    res = sorted((x - t_start) / 1e9 for a in answers for x in a["resumed_ns"] if x is not None)

    def at(xs: list[float], q: float) -> float:
        k = math.ceil(q * n) - 1
        return xs[k] if 0 <= k < len(xs) else math.nan

    return {
        "restart_listen_s": (t_ready - t_start) / 1e9, "down_s": (t_start - t_kill) / 1e9,
        "back": len(back), "resumed": len(res),
        "back_s_p50": at(back, 0.5), "back_s_p99": at(back, QUORUM),
        "resumed_s_p50": at(res, 0.5), "resumed_s_p99": at(res, QUORUM),
        "lost": sum(a["lost"] for a in answers),
        "duplicates": sum(a["duplicates"] for a in answers),
        "gaps": sum(a["gaps"] for a in answers),
        "connect_attempts": sum(a["attempts"] for a in answers),
        "opens": sum(a["opens"] for a in answers),
    }  # fmt: skip


class CpuSampler:
    """The restarted server's CPU, sampled every 0.2 s in a thread until :meth:`stop`."""

    EVERY_S = 0.2

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[int, float]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            with contextlib.suppress(ProcessLookupError):
                self.samples.append((time.time_ns(), tree_cpu_s(self.pid)))
            self.done.wait(self.EVERY_S)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(5)

    def figures(self, t_start: int) -> dict[str, Any]:
        s = self.samples
        if len(s) < 2:
            return {"storm_server_cpu_s": math.nan, "storm_server_cpu_pct_peak": math.nan}
        pairs = zip(s, s[1:], strict=False)
        rates = [100 * (c1 - c0) / ((t1 - t0) / 1e9) for (t0, c0), (t1, c1) in pairs]
        return {
            # From listening to the quorum; the start-up (imports, app) apart.
            "startup_server_cpu_s": s[0][1], "storm_server_cpu_s": s[-1][1] - s[0][1],
            "storm_wall_s": (s[-1][0] - s[0][0]) / 1e9, "storm_server_cpu_pct_peak": max(rates),
            "storm_server_cpu_pct_mean": 100 * (s[-1][1] - s[0][1]) / ((s[-1][0] - s[0][0]) / 1e9),
        }  # fmt: skip


def run(args: argparse.Namespace) -> int:
    transports = args.transport or STORM_TRANSPORTS
    servers = args.server or ["python", "node"]
    rungs = [
        Rung(server, t, args.n, sse_impl="pushlab" if t == "sse" and server == "python" else "")
        for server in servers
        for t in transports
        if server != "node" or t in NODE_TRANSPORTS  # the Node baseline has no /stream
    ]
    params = Params(per_holder=args.per_holder)
    out = ResultsDir.create("storm", args.out)
    meta = {"storm": {k: v for k, v in vars(args).items() if k != "out"} | {"out": str(args.out)}}
    out.write_meta(meta, started_at=time.time())
    addrs = sources()
    jitters = [False] if args.no_jitter else [True, False] if args.herd else [True]
    for rung in rungs:
        for jitter in jitters:
            print(f"storm: {rung.name} jitter={jitter}", file=sys.stderr, flush=True)
            out.add_cell(storm_cell(rung, params, args, out.path / "raw", addrs, jitter))
    out.write_meta(meta, ended_at=time.time())
    from experiments.ladder.report import render

    render(out.path)
    print(out.path)
    return 0
