"""``pushlab bench`` (run a profile, plot, report) and ``pushlab plot DIR`` (re-render)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.capacity.cells import PROFILES as CAPACITY_PROFILES
from experiments.matrix import PROFILES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``bench`` and ``plot`` (the command name decides which apply)."""
    if parser.prog.endswith(" plot"):
        parser.add_argument("results_dir", type=Path, help="a results folder")
        return
    parser.add_argument("--profile", choices=PROFILES + CAPACITY_PROFILES, default="quick")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results root folder")
    parser.add_argument(
        "--no-plot", action="store_true", help="only measure (and write the perf ratios)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the bench or re-render a folder."""
    from experiments.report import render
    from experiments.results import load

    if args.command == "plot":
        if args.results_dir.name.split("_", 1)[-1].startswith(("ladder", "storm")):
            from experiments.ladder.report import render as render_ladder

            print(render_ladder(args.results_dir))
            return 0
        report = render(args.results_dir)
        print(report)
        return 0
    if args.profile in CAPACITY_PROFILES:
        from experiments.capacity import cli as capacity_cli

        return capacity_cli.run(args)
    from experiments.run import run_bench

    path = run_bench(args.profile, args.out)
    interrupted = bool(load(path)[0].get("interrupted"))
    if not args.no_plot:
        report = render(path)
        print(f"report: {report.resolve()}", file=sys.stderr)
    else:
        from experiments import ratios

        rows = ratios.compute(load(path)[1])
        if rows:
            ratios.write(path, rows)
    print(path)
    return 130 if interrupted else 0
