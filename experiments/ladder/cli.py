"""``pushlab ladder``: climb the connection ladder into ``results/<UTC>_ladder/``.

pushlab ladder --profile short            # a few hundred connections: the mechanics
pushlab ladder --profile full             # 1k, 5k, 10k, 19k per transport; 36k on workers
pushlab ladder --only ws --counts 5000    # a subset
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from experiments.ladder.cells import PROFILES, Rung, profile
from experiments.ladder.report import render
from experiments.ladder.run import Params, measure, sources
from experiments.results import ResultsDir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=PROFILES, default="short")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results root folder")
    parser.add_argument("--only", action="append", help="rung names containing this (repeatable)")
    parser.add_argument("--counts", type=int, nargs="*", help="keep only these connection counts")
    parser.add_argument("--no-node", action="store_true", help="leave the Node rows out")
    parser.add_argument("--idle-s", type=float, help="idle window (>= one heartbeat interval)")
    parser.add_argument("--heartbeat-s", type=float, help="WS ping and SSE keep-alive interval")
    parser.add_argument("--per-holder", type=int, help="connections per client process")


def params_of(args: argparse.Namespace) -> Params:
    p = Params()
    if args.profile == "short":
        p = dataclasses.replace(p, idle_s=2.0, ws_ping_interval_s=1.0, keepalive_s=1.0)
    if hb := args.heartbeat_s:
        p = dataclasses.replace(p, ws_ping_interval_s=hb, keepalive_s=hb)
    if args.idle_s:
        p = dataclasses.replace(p, idle_s=args.idle_s)
    if args.per_holder:
        p = dataclasses.replace(p, per_holder=args.per_holder)
    return p


def select(args: argparse.Namespace) -> list[Rung]:
    rungs = profile(args.profile, node=not args.no_node)
    if args.only:
        rungs = [r for r in rungs if any(o in r.name for o in args.only)]
    if args.counts:
        rungs = [r for r in rungs if r.n in args.counts]
    return rungs


def run_ladder(rungs: list[Rung], params: Params, root: Path, name: str) -> Path:
    """Each rung on its own fresh server; cells written as they finish."""
    out = ResultsDir.create("ladder", root)
    meta = {
        "profile": name, "ladder": dataclasses.asdict(params), "rungs": [r.as_dict() for r in rungs]
    }  # fmt: skip
    out.write_meta(meta, started_at=time.time())
    addrs = sources()
    for rung in rungs:
        print(f"ladder: {rung.name}", file=sys.stderr, flush=True)
        out.add_cell(measure(rung, params, out.path / "raw", addrs))
    out.write_meta(meta, ended_at=time.time())
    render(out.path)  # reads the cells back as a reader sees them, writes the target rows
    return out.path


def run(args: argparse.Namespace) -> int:
    path = run_ladder(select(args), params_of(args), args.out, args.profile)
    print(path)
    return 0
