"""``pushlab capacity`` (= ``pushlab bench --profile capacity``): search, plot, report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.capacity.cells import P99_LIMIT_MS, PROFILES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``pushlab capacity``."""
    parser.add_argument("--profile", choices=PROFILES, default="capacity")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results root folder")
    parser.add_argument(
        "--p99-ms", type=float, default=P99_LIMIT_MS,
        help=f"service level: p99 limit in ms (default {P99_LIMIT_MS:g})",
    )  # fmt: skip
    parser.add_argument("--no-plot", action="store_true", help="only measure")


def run(args: argparse.Namespace) -> int:
    """Run the capacity search into a new results folder, then its figures and report."""
    from experiments.capacity.search import run_capacity
    from experiments.report import render
    from experiments.results import load

    path = run_capacity(args.profile, args.out, p99_ms=getattr(args, "p99_ms", P99_LIMIT_MS))
    if not args.no_plot:
        print(f"report: {render(path).resolve()}", file=sys.stderr)
    print(path)
    return 130 if load(path)[0].get("interrupted") else 0
