"""``pushlab capacity`` (= ``pushlab bench --profile capacity``): search, plot, report.

``--transport stream`` (repeatable) keeps only that transport's rows, a quick look at one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from experiments.capacity.cells import P99_LIMIT_MS, PROFILES, Plan, plan
from feed.wire.contract import TRANSPORTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``pushlab capacity``."""
    parser.add_argument("--profile", choices=PROFILES, default="capacity")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results root folder")
    parser.add_argument(
        "--p99-ms", type=float, default=P99_LIMIT_MS,
        help=f"service level: p99 limit in ms (default {P99_LIMIT_MS:g})",
    )  # fmt: skip
    parser.add_argument("--no-plot", action="store_true", help="only measure")
    parser.add_argument(
        "--transport", choices=TRANSPORTS, action="append",
        help="only the rows of this transport (repeatable; default: every row of the profile)",
    )  # fmt: skip


def selected(args: argparse.Namespace) -> Plan:
    """The profile's plan, cut to the ``--transport`` rows when given."""
    p = plan(args.profile)
    only = getattr(args, "transport", None)
    if not only:
        return p
    rows = tuple(r for r in p.rows if r.transport in only)
    if not rows:
        raise SystemExit(f"profile {p.name} has no row of {', '.join(only)}")
    return dataclasses.replace(p, rows=rows)


def run(args: argparse.Namespace) -> int:
    """Run the capacity search into a new results folder, then its figures and report."""
    from experiments.capacity.search import run_capacity
    from experiments.report import render
    from experiments.results import load

    path = run_capacity(
        args.profile, args.out, p99_ms=getattr(args, "p99_ms", P99_LIMIT_MS), plan=selected(args)
    )
    if not args.no_plot:
        print(f"report: {render(path).resolve()}", file=sys.stderr)
    print(path)
    return 130 if load(path)[0].get("interrupted") else 0
