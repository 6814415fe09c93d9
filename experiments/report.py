"""``report.md`` and ``report.html`` of a results folder: figures, tables, generated sentences.

Every number and every comparison in the text is computed here from ``summary.json`` and
``meta.json``; nothing is typed in by hand, so re-rendering an old folder gives the same report.
"""

import html
from pathlib import Path

from experiments import ratios, results
from experiments.capacity import plot as capacity_plot, report as capacity_report
from experiments.plots import draw_all
from experiments.records import BenchMeta
from experiments.report_base import Cells, Section
from experiments.report_costs import bytes_section, cpu_section, interval_section, memory_section
from experiments.report_delivery import (
    headline_section,
    integrity_section,
    others_section,
    run_section,
    throughput_section,
)
from experiments.report_protocols import hpack_section, multiplex_section, protocols_section

__all__ = ["Cells", "Section", "render", "sections"]


def sections(meta: BenchMeta, cells: Cells) -> list[Section]:
    """The report's sections, in order (the issue-8 ratios only for runs with perf cells)."""
    if capacity_report.is_capacity(cells):
        targets = ratios.section(cells)
        return [
            run_section(meta, cells),
            *capacity_report.sections(cells),
            *([targets] if targets is not None else []),
        ]
    makers = (
        headline_section,
        throughput_section,
        bytes_section,
        cpu_section,
        interval_section,
        memory_section,
    )
    return [
        run_section(meta, cells),
        integrity_section(cells),
        *[s for s in (ratios.section(cells),) if s is not None],
        *(m(cells) for m in makers),
        *[
            s
            for s in (protocols_section(cells), hpack_section(cells), multiplex_section(cells))
            if s is not None
        ],
        others_section(cells),
    ]


def _md(secs: list[Section], figures: set[str]) -> str:
    out = ["# pushlab transport comparison", ""]
    for s in secs:
        out += [f"## {s.title}", ""]
        if s.figure in figures:
            out += [f"![{s.title}](figures/{s.figure})", ""]
        if s.rows:
            out += ["| " + " | ".join(s.header) + " |", "|" + "---|" * len(s.header)]
            out += ["| " + " | ".join(r) + " |" for r in s.rows]
            out.append("")
        out += [*s.text, ""] if s.text else []
    return "\n".join(out).replace("\n\n\n", "\n\n")


def _html(secs: list[Section], figures: set[str]) -> str:
    e = html.escape
    body = []
    for s in secs:
        body.append(f"<h2>{e(s.title)}</h2><div class='row'>")
        if s.figure in figures:
            body.append(f"<img src='figures/{e(s.figure)}' alt='{e(s.title)}'>")
        if s.rows:
            head = "".join(f"<th>{e(h)}</th>" for h in s.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{e(v.strip('`'))}</td>" for v in r) + "</tr>" for r in s.rows
            )
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        body.append("</div>" + "".join(f"<p>{e(t)}</p>" for t in s.text))
    style = (
        "body{font-family:sans-serif;max-width:1400px;margin:auto}.row{display:flex;gap:1em;"
        "flex-wrap:wrap;align-items:flex-start}img{max-width:640px}table{border-collapse:collapse;"
        "font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    )
    return (
        f"<!doctype html><meta charset='utf-8'><title>pushlab report</title><style>{style}</style>"
        f"<h1>pushlab transport comparison</h1>{''.join(body)}"
    )


def render(path: Path | str) -> Path:
    """Draw every figure and write ``report.md`` and ``report.html``; returns the report path."""
    folder = Path(path)
    meta, cells = results.load(folder)
    if capacity_report.is_capacity(cells):
        limit = meta["params"].get("levels", {}).get("knee", {}).get("p99_ms")
        drawn = capacity_plot.draw_all(cells, folder / "figures", limit)
    else:
        drawn = draw_all(cells, folder / "figures")
    # A figure section with neither its figure nor a table row has nothing of this run to show
    # (a profile without those cells, e.g. ``protocols`` has no headline load).
    secs = [s for s in sections(meta, cells) if s.rows or s.figure is None or s.figure in drawn]
    rows = ratios.compute(cells)
    if rows:
        ratios.write(folder, rows)
    (folder / "report.md").write_text(_md(secs, set(drawn)))
    (folder / "report.html").write_text(_html(secs, set(drawn)))
    return folder / "report.md"
