"""Before/after table of ``perf`` runs: ``python -m experiments.perf_compare A=DIR.. B=DIR..``.

Each argument is ``LABEL=RESULTS_DIR``; runs with the same label are repeats. For every target
figure it prints, per label, the median and the range over the repeats of the Python figure and
of its ratio to the same run's Node ws figure, and how many repeats counted (generator not
saturated, nothing lost). Markdown, so docs/performance.md can quote it verbatim.
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from pathlib import Path

from experiments import ratios
from experiments.records import RatioRow
from experiments.report_base import f
from experiments.results import load


def _key(row: RatioRow) -> tuple[str, str, float]:
    server = row["server"]
    transport = row["transport"] if server == "python" else f"{row['transport']} ({server})"
    return (row["figure"].split(" (")[0], transport, float(row["rate"]))


def _num(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def _spread(values: list[float]) -> str:
    vals = [v for v in values if v == v]  # drop NaN
    if not vals:
        return "-"
    if len(vals) == 1:
        return f(vals[0])
    return f"{f(statistics.median(vals))} ({f(min(vals))}–{f(max(vals))})"


def table(runs: list[tuple[str, Path]]) -> str:
    """The markdown table for ``(label, folder)`` pairs."""
    labels = list(dict.fromkeys(label for label, _ in runs))
    data: dict[tuple[str, str, float], dict[str, list[RatioRow]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for label, folder in runs:
        for row in ratios.compute(load(folder)[1]):
            data[_key(row)][label].append(row)
    head = ["figure", "transport", "rate", "target"]
    for label in labels:
        head += [f"{label}: python", f"{label}: node ws", f"{label}: ratio", f"{label}: counted"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in sorted(data, key=lambda k: (k[0], k[1], k[2])):
        rows = data[key]
        target = next(iter(rows.values()))[0]["target"]
        line = [key[0], key[1], f(key[2]), target]
        for label in labels:
            rs = rows.get(label, [])
            line += [
                _spread([_num(r["python"]) for r in rs]),
                _spread([_num(r["node_ws"]) for r in rs]),
                _spread([_num(r["ratio"]) for r in rs]),
                f"{sum(1 for r in rs if r['counts'])}/{len(rs)}",
            ]
        out.append("| " + " | ".join(line) + " |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    """Print the table for ``LABEL=DIR`` arguments."""
    runs = []
    for arg in argv:
        label, _, folder = arg.partition("=")
        runs.append((label, Path(folder)))
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
