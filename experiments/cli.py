"""``pushlab bench`` (run a profile, plot, report) and ``pushlab plot DIR`` (re-render)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.matrix import PROFILES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``bench`` and ``plot`` (the command name decides which apply)."""
    if parser.prog.endswith(" plot"):
        parser.add_argument("results_dir", type=Path, help="a results folder")
        return
    parser.add_argument("--profile", choices=PROFILES, default="quick")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results root folder")
    parser.add_argument("--no-plot", action="store_true", help="only measure")


def run(args: argparse.Namespace) -> int:
    """Run the bench or re-render a folder."""
    from experiments.report import render

    if args.command == "plot":
        report = render(args.results_dir)
    else:
        from experiments.run import run_bench

        path = run_bench(args.profile, args.out)
        if args.no_plot:
            print(path)
            return 0
        report = render(path)
    print(f"report: {report}", file=sys.stderr)
    print(report)
    return 0
