"""The one runner: a profile's cells, each against a real server process, into a results folder.

For each group of cells that share a server configuration it starts the server (``python -m
servers`` under uvicorn, or hypercorn for HTTP/2, with a fresh local CA's certificate for the
TLS protocols; the same app under Granian, or the Node baseline), waits until
``/healthz`` answers, runs the cells (each warms up, then measures over a fixed window) and stops
the server. Every cell is written to ``summary.json``/``.csv`` as soon as it finishes; Ctrl-C
stops everything this run started and keeps the finished cells. Progress (cell i/n, time left)
goes to stderr.
"""

from __future__ import annotations

import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from experiments import cells as run_cells, sockstats
from experiments.children import (
    granian_server_command,
    python_server_args,
    spawn,
    stop,
    wait_healthy,
)
from experiments.hpack import hpack_cell
from experiments.matrix import Cell, available, profile
from experiments.records import BenchCell, BenchParams, ServerInfo, check
from experiments.results import ResultsDir
from experiments.tls import make_tls
from feed.settings import Settings
from servers.launch import ServerProcess, child_env, free_port

CellFn = Callable[[Cell, run_cells.Target, Path], dict[str, Any]]
_KINDS: dict[str, CellFn] = {
    "asyncio": run_cells.asyncio_cell,
    "idle": run_cells.idle_cell,
    "locust": run_cells.locust_cell,
    "hpack": hpack_cell,
}
_OVERHEAD_S = {"asyncio": 1.2, "idle": 2.5, "locust": 6.0, "hpack": 1.0}


def _estimate(cell: Cell) -> float:
    return cell.warmup_s + cell.duration_s + _OVERHEAD_S[cell.kind]


def _groups(cells: list[Cell]) -> list[list[Cell]]:
    groups: dict[tuple[Any, ...], list[Cell]] = {}
    for c in cells:
        groups.setdefault(c.server_key, []).append(c)
    return list(groups.values())


def _settings(cell: Cell, port: int, env: dict[str, str] | None = None) -> Settings:
    """What the server process will build from the same environment and flags."""
    return Settings.from_env(
        child_env(cell.server_env if env is None else env),
        port=port,
        ticker_rate=cell.rate,
        ticker_size=cell.size,
        admin=True,
        log_level="warning",
    )


def node_problem() -> str | None:
    """Why the Node baseline cannot run here (None when it can)."""
    try:
        from experiments import baseline  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return "experiments.baseline (Node server) is not in this build"
    ok, reason = baseline.node_available()
    if not ok:
        return str(reason)
    try:
        baseline.ensure_node_modules()
    except Exception as exc:  # npm failing must skip the row, never abort the run
        return f"npm install failed: {exc}"
    return None


def granian_problem() -> str | None:
    """Why the Granian row cannot run here (None when it can)."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        version("granian")
    except PackageNotFoundError:
        return "granian is not installed (it is in the lab extras: make venv)"
    return None


def server_problem(kind: str) -> str | None:
    """Why cells on server ``kind`` must be skipped here (None when they can run)."""
    return {"node": node_problem, "granian": granian_problem}.get(kind, lambda: None)()


@contextmanager
def server(cell: Cell, log: Path) -> Iterator[tuple[run_cells.Target, ServerInfo]]:
    """A server process for ``cell``'s group, up and healthy; stopped on exit."""
    base = Settings.from_env(child_env())
    topic, history = base.ticker_topic, base.history
    env = dict(cell.server_env)
    # A fresh local CA per server (never committed); the clients verify against it.
    tls = make_tls(log.with_suffix(".tls")) if cell.proto != "h1" else None
    ca = str(tls.ca) if tls else None
    if cell.server == "node":
        from experiments.baseline import NodeServer

        h2 = cell.proto == "h2-tls"
        with NodeServer(
            cell.rate, cell.size, topic, history, log_path=log, tls=tls, http2=h2
        ) as node:
            info: ServerInfo = {"kind": "node", "argv": node.argv}
            yield run_cells.Target(node.url, node.port, node.pid, topic, ca), info
        return
    if cell.server == "granian":
        yield from _granian(cell, env, topic, log)
        return
    if tls is not None:
        env |= {"PUSHLAB_TLS_CERT": str(tls.cert), "PUSHLAB_TLS_KEY": str(tls.key)}
        env |= {"PUSHLAB_HTTP2": "1"} if cell.proto in ("h2-tls", "h3") else {}
        env |= {"PUSHLAB_HTTP3": "1"} if cell.proto == "h3" else {}
    python = ServerProcess(
        env=env, args=python_server_args(cell.rate, cell.size, topic), log_path=log
    )
    with python:
        settings = _settings(cell, python.port, env).as_dict()
        info = {"kind": "python", "argv": python.argv, "settings": settings}
        yield run_cells.Target(python.url, python.port, python.pid, topic, ca), info


def _granian(
    cell: Cell, env: dict[str, str], topic: str, log: Path
) -> Iterator[tuple[run_cells.Target, ServerInfo]]:
    """The app under Granian: a foreign server that binds its own port (free_port)."""
    from importlib.metadata import version

    port = free_port()
    argv = granian_server_command(port)
    # No flags reach the app under Granian: the same values go in as PUSHLAB_* variables.
    env |= {
        "PUSHLAB_HOST": "127.0.0.1", "PUSHLAB_PORT": str(port), "PUSHLAB_LOG_LEVEL": "warning",
        "PUSHLAB_TICKER_RATE": f"{cell.rate:g}", "PUSHLAB_TICKER_SIZE": str(cell.size),
        "PUSHLAB_TICKER_TOPIC": topic, "PUSHLAB_ADMIN": "1",
    }  # fmt: skip
    settings = _settings(cell, port).as_dict()
    info: ServerInfo = {
        "kind": "granian",
        "argv": argv,
        "granian": version("granian"),
        "settings": settings,
    }
    started: list[subprocess.Popen[str]] = []
    try:
        proc = spawn(argv, into=started, env=env, log=log)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        yield run_cells.Target(url, port, proc.pid, topic), info
    finally:
        for p in started:
            stop(p)


class Progress:
    """``[i/n] cell ... ~Ns left`` on stderr."""

    def __init__(self, cells: list[Cell], enabled: bool = True) -> None:
        self.left = sum(_estimate(c) for c in cells)
        self.n, self.i, self.enabled = len(cells), 0, enabled

    def start(self, cell: Cell) -> None:
        self.i += 1
        if self.enabled:
            print(
                f"[{self.i}/{self.n}] {cell.name}  (~{self.left:.0f} s left)",
                file=sys.stderr,
                flush=True,
            )

    def done(self, cell: Cell, row: BenchCell) -> None:
        self.left = max(0.0, self.left - _estimate(cell))
        if self.enabled:
            figures = (
                ("events_per_s", row.get("events_per_s")),
                ("latency_ms_p99", row.get("latency_ms_p99")),
                ("memory_per_connection_kb", row.get("memory_per_connection_kb")),
            )
            bits = [f"{k}={v:.4g}" for k, v in figures if isinstance(v, float)]
            print(
                f"      {row.get('status', 'ok')} {' '.join(bits)} {row.get('reason', '')}",
                file=sys.stderr,
                flush=True,
            )


def run_bench(
    name: str,
    root: Path | str = "results",
    *,
    progress: bool = True,
    cells: list[Cell] | None = None,
) -> Path:
    """Run a profile (or explicit ``cells``); return the results folder.

    Ctrl-C stops the cell in progress and everything it started; the folder keeps the finished
    cells and ``meta.json`` says ``"interrupted": true``.
    """
    chosen, dropped = available(cells if cells is not None else profile(name))
    rd = ResultsDir.create(name, root)
    if not sockstats.available():
        raise RuntimeError("`ss` (iproute2) is needed to count bytes on the wire")
    params: BenchParams = {
        "profile": name, "cells": [c.params() for c in chosen], "dropped": dropped,
    }  # fmt: skip
    servers: list[ServerInfo] = []
    started = time.time()
    rd.write_meta(params, servers=servers, started_at=started)
    bar = Progress(chosen, progress)
    problems = {kind: server_problem(kind) for kind in {c.server for c in chosen}}
    interrupted = False
    try:
        for group in _groups(chosen):
            reason = problems[group[0].server]
            if reason:
                for c in group:
                    bar.start(c)
                    row = _row({**c.params(), "status": "skipped", "reason": reason}, c)
                    rd.add_cell(row)
                    bar.done(c, row)
                continue
            _run_group(group, rd, servers, bar)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: finished cells are kept", file=sys.stderr)
    finally:
        rd.write_meta(
            params,
            servers=servers,
            started_at=started,
            ended_at=time.time(),
            interrupted=interrupted,
        )
    return rd.path


def _run_group(group: list[Cell], rd: ResultsDir, servers: list[ServerInfo], bar: Progress) -> None:
    log = rd.raw(f"server{len(servers)}.log")
    try:
        ctx = server(group[0], log)
        target, info = ctx.__enter__()
    except Exception as exc:  # a server that will not start fails its cells, not the run
        for c in group:
            bar.start(c)
            row = _row(
                {**c.params(), "status": "failed", "reason": f"server did not start: {exc}"}, c
            )
            rd.add_cell(row)
            bar.done(c, row)
        return
    servers.append(info)
    try:
        for c in group:
            bar.start(c)
            began = time.perf_counter()
            try:
                figures = _KINDS[c.kind](c, target, rd.path / "raw")
                figures["cell_wall_s"] = time.perf_counter() - began
                ok = {**c.params(), "server_index": len(servers) - 1, "status": "ok", **figures}
                # A key records.py does not declare fails this cell now, not the report later.
                row = _row(ok, c)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                why = f"{type(exc).__name__}: {exc}"
                row = _row({**c.params(), "status": "failed", "reason": why}, c)
            rd.add_cell(row)
            bar.done(c, row)
    finally:
        ctx.__exit__(None, None, None)


def _row(row: dict[str, Any], cell: Cell) -> BenchCell:
    return check(BenchCell, row, f"cell {cell.name}")
