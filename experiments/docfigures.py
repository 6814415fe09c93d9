"""Fill figure markers in Markdown from committed results; never from typed-in numbers.

A marker names a metric and which cells of a results folder's ``summary.json`` to show::

    <!-- fig metric=latency_ms_p99 where=kind:asyncio,tags:headline cols=transport,subscribers -->
    (generated: a small table, or "not yet measured")
    <!-- /fig -->

Without ``metric`` the block is a text table: ``cols`` of every matching cell, as written
(answers such as "401" or "closed after 3 s"), all rows.
``where`` conditions are ``key:value``; a list-valued cell field (``tags``) matches by membership.
Which run: ``results/REFERENCE`` lists the committed reference run folders, one per line; a marker
takes the first, or the first whose name contains ``run=TEXT``; ``make=TARGET`` names the make
target that produces the figure (default ``bench``). No REFERENCE file, no matching
run or no matching cell: the block says "not yet measured" and how to produce it. A key the
run's cell record does not declare (:mod:`experiments.records`) is a typo and an error.

``expect=transports`` adds a line naming every transport of the contract
(``feed.wire.contract.TRANSPORTS``) without a row, "not measured in the reference run": a run
older than a transport shows the rows it has and says what it lacks, never a number it lacks.

``<!-- fig table=envelope transport=ws -->`` renders :mod:`experiments.envelope`'s arithmetic
for one transport from the same reference run instead of a metric table.

``python -m experiments.docfigures docs/interview-prep.md`` rewrites the blocks;
``--check`` exits 1 when a file is out of date (the test suite runs that check).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from experiments import envelope
from experiments.records import DERIVED_ROWS, BenchCell, record_keys
from experiments.results import cell_record, load_cells
from feed.wire.contract import TRANSPORTS

MARKER = re.compile(r"(<!-- fig (?P<attrs>[^>]*?) -->\n)(?P<body>.*?)(<!-- /fig -->)", re.DOTALL)
MAX_ROWS = 12


class DocFigureError(ValueError):
    """A marker that cannot be rendered as written (a key its run does not have)."""


def parse_attrs(text: str) -> dict[str, str]:
    """``a=b c=d`` -> ``{"a": "b", "c": "d"}``."""
    return dict(part.split("=", 1) for part in text.split() if "=" in part)


def reference_runs(results: Path) -> list[str]:
    ref = results / "REFERENCE"
    if not ref.is_file():
        return []
    return [line.strip() for line in ref.read_text().splitlines() if line.strip()]


def reference_cells(
    results: Path, run_hint: str | None = None
) -> tuple[str | None, list[Mapping[str, object]]]:
    """``(run name, cells)`` of the first reference run (containing ``run_hint``), or no cells.

    The cells are checked against the record their folder name selects
    (:func:`experiments.results.cell_record`).
    """
    run = _reference_run(results, run_hint)
    if run is None or not (results / run / "summary.json").is_file():
        return run, []
    return run, list(load_cells(results / run, cell_record(results / run)))


def _reference_run(results: Path, run_hint: str | None) -> str | None:
    return next((r for r in reference_runs(results) if run_hint is None or run_hint in r), None)


def _check_keys(results: Path, run: str | None, keys: list[str]) -> None:
    """A marker naming a key its run's record does not declare is a typo: say which."""
    if run is None:
        return
    record = cell_record(results / run)
    known = record_keys(record)
    if record is BenchCell:  # a bench run's derived rows (capacity knees, ceiling) too
        known = known.union(*(record_keys(r) for r in DERIVED_ROWS.values()))
    for key in keys:
        if key not in known:
            raise DocFigureError(
                f"a fig marker on run {run} names {key!r}, which {record.__name__} does not "
                "declare (experiments/records.py)"
            )


def _marker_keys(attrs: dict[str, str]) -> list[str]:
    keys = [k for k in attrs.get("metric", "").split(",") if k]
    keys += [k for k in attrs.get("cols", "").split(",") if k]
    keys += [cond.partition(":")[0] for cond in attrs.get("where", "").split(",") if cond]
    return keys


def _matches(cell: Mapping[str, object], where: str) -> bool:
    for cond in filter(None, where.split(",")):
        key, _, want = cond.partition(":")
        have = cell.get(key)
        if isinstance(have, list):
            if want not in [str(v) for v in have]:
                return False
        elif str(have) != want:
            return False
    return True


def _fmt(value: object, digits: int) -> str:
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, dict):
        # server_env: ``{"PUSHLAB_SSE_IMPL": "pushlab"}`` -> ``sse_impl=pushlab``; none -> ``-``.
        pairs = [f"{k.removeprefix('PUSHLAB_').lower()}={v}" for k, v in sorted(value.items())]
        return " ".join(pairs) or "-"
    return str(value)


def _per_metric(attrs: dict[str, str], key: str, n: int, default: str) -> list[str]:
    """``unit=B,ms`` -> one value per metric; a single value applies to every metric."""
    values = attrs.get(key, default).split(",")
    return values * n if len(values) == 1 else values


def _number(cell: Mapping[str, object], metric: str) -> bool:
    value = cell.get(metric)
    return isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))


def render_block(attrs: dict[str, str], results: Path, doc_dir: Path) -> str:
    """The generated Markdown for one marker: ``metric=a,b`` gives one column per metric,
    ``table=envelope`` the 1M-user envelope, and no ``metric`` a text table of ``cols``."""
    if "metric" not in attrs and "table" not in attrs:
        return render_text_block(attrs, results, doc_dir)
    if attrs.get("table") == "envelope":
        run = _reference_run(results, attrs.get("run"))
        bench = load_cells(results / run, BenchCell) if run is not None else []
        source = _source(run, results, doc_dir)
        return envelope.render_markdown(bench, attrs.get("transport", "ws"), source)
    run, cells = reference_cells(results, attrs.get("run"))
    _check_keys(results, run, _marker_keys(attrs))
    metrics = attrs["metric"].split(",")
    where = attrs.get("where", "")
    rows = [c for c in cells if _matches(c, where) and all(_number(c, m) for m in metrics)]
    if not rows:
        source = f"run `{run}`" if run else "the reference run (none committed yet)"
        return (
            f"*Not yet measured:* `{attrs['metric']}`"
            + (f" where `{where}`" if where else "")
            + f" in {source}; produce it with `make {attrs.get('make', 'bench')}`.\n"
        )
    cols = [c for c in attrs.get("cols", "transport").split(",") if c]
    units = _per_metric(attrs, "unit", len(metrics), "")
    digits = [int(d) for d in _per_metric(attrs, "digits", len(metrics), "1")]
    header = cols + [m + (f" ({u})" if u else "") for m, u in zip(metrics, units, strict=True)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    # ``max_rows=N``: a transport x server x protocol grid is one table, not a sample of it.
    cap = int(attrs.get("max_rows", MAX_ROWS))
    for c in rows[:cap]:
        values = [_fmt(c.get(k, ""), digits[0]) for k in cols]
        values += [_fmt(c[m], d) for m, d in zip(metrics, digits, strict=True)]
        lines.append("| " + " | ".join(values) + " |")
    more = f" ({len(rows) - cap} more rows there)" if len(rows) > cap else ""
    lines += ["", *_unmeasured(attrs, rows), _source(run, results, doc_dir) + more]
    return "\n".join(lines) + "\n"


def _unmeasured(attrs: dict[str, str], rows: list[Mapping[str, object]]) -> list[str]:
    """``expect=transports``: the contract's transports the table has no row of, in words."""
    expect = attrs.get("expect")
    if expect is None:
        return []
    if expect != "transports":
        raise DocFigureError(f"expect={expect!r}: only expect=transports is known")
    have = {str(c.get("transport")) for c in rows}
    missing = [t for t in TRANSPORTS if t not in have]
    if not missing:
        return []
    names = ", ".join(f"`{t}`" for t in missing)
    return [f"*Not measured in the reference run:* {names}.", ""]


def _source(run: str | None, results: Path, doc_dir: Path) -> str:
    # Links are relative to the Markdown file: ``docs/x.md`` -> ``../results/<run>/...``.
    up = "../" * len(doc_dir.resolve().relative_to(results.resolve().parent).parts)
    return f"Source: [`results/{run}/summary.json`]({up}results/{run}/summary.json)"


def render_text_block(attrs: dict[str, str], results: Path, doc_dir: Path) -> str:
    """``cols`` of every matching cell as they are (answers that are words, not numbers)."""
    where = attrs.get("where", "")
    run, cells = reference_cells(results, attrs.get("run"))
    _check_keys(results, run, _marker_keys(attrs))
    rows = [c for c in cells if _matches(c, where)]
    if not rows:
        source = f"run `{run}`" if run else "the reference run (none committed yet)"
        make = attrs.get("make", "bench")
        return f"*Not yet measured* in {source}; produce it with `make {make}`.\n"
    cols = [c for c in attrs.get("cols", "").split(",") if c]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for c in rows:
        lines.append("| " + " | ".join(str(c.get(k, "")).replace("|", "/") for k in cols) + " |")
    up = "../" * len(doc_dir.resolve().relative_to(results.resolve().parent).parts)
    lines += ["", f"Source: [`results/{run}/summary.json`]({up}results/{run}/summary.json)"]
    return "\n".join(lines) + "\n"


def render(text: str, results: Path, doc_dir: Path) -> str:
    """``text`` with every marker block regenerated."""

    def fill(m: re.Match[str]) -> str:
        body = render_block(parse_attrs(m.group("attrs")), results, doc_dir)
        return m.group(1) + body + m.group(4)

    return MARKER.sub(fill, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.docfigures")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path in args.files:
        old = path.read_text()
        new = render(old, args.results, path.parent)
        if new != old:
            stale.append(str(path))
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"out of date (run make docs): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
