"""What every report section is made of: a heading, a figure, a table, generated sentences."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from experiments.records import BenchCell

Cells = list[BenchCell]


@dataclass
class Section:
    """A heading, an optional figure, a table and generated sentences."""

    title: str
    figure: str | None = None
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


def f(x: object, digits: int = 3) -> str:
    """A number for a table: 3 significant digits, '-' when missing."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if not isinstance(x, int | float) or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, float) and abs(x) >= 10**digits:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def source(cells: Cells) -> str:
    """Which load generator produced the rows behind a figure."""
    gens = sorted({str(c.get("generator", "-")) for c in cells})
    return f"Figure and table rows produced by the {', '.join(gens) or 'no'} load generator."
