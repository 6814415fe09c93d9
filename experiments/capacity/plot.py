"""The capacity figures, from a results folder's saved rows only (matplotlib, Agg, PNG).

``capacity_latency.png``: p99 against delivered events/s, log-log, one line per row, the knee
marked (hollow when it is only a lower bound) and the p99 limit drawn; the classic
latency-throughput curve. ``capacity_shootout.png``: broadcast p95 against clients (the
hashrocket websocket-shootout rule: where p95 crosses 500 ms), pushlab against Node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from experiments.plots import COLORS  # noqa: E402

Cells = Sequence[Mapping[str, Any]]
LATENCY = "capacity_latency.png"
SHOOTOUT = "capacity_shootout.png"


def steps(cells: Cells, search: str) -> dict[str, Cells]:
    """Measured steps by row label, in ladder order."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for c in cells:
        if c.get("kind") == "asyncio" and c.get("search") == search and c.get("status") == "ok":
            out.setdefault(str(c["row"]), []).append(c)
    return {k: sorted(v, key=lambda c: int(c["step"])) for k, v in out.items()}


def knees(cells: Cells, search: str) -> dict[str, Mapping[str, Any]]:
    """The knee rows by row label."""
    return {
        str(c["row"]): c for c in cells if c.get("kind") == "knee" and c.get("search") == search
    }


def _style(row: str) -> dict[str, Any]:
    transport = next((w for w in row.split() if w in COLORS), "ws")
    return {
        "color": COLORS[transport],
        "linestyle": "--" if row.startswith("node") else ":" if "=" in row else "-",
    }


def _finite(*xs: Any) -> bool:
    return all(isinstance(x, int | float) and math.isfinite(x) and x > 0 for x in xs)


def latency(cells: Cells, path: Path, limit_ms: float | None = None) -> Path | None:
    """p99 vs delivered events/s per row, knee marked."""
    by_row, marks = steps(cells, "knee"), knees(cells, "knee")
    if not by_row:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for row, rs in by_row.items():
        pts = [(c["events_per_s"], c["latency_ms_p99"]) for c in rs
               if _finite(c.get("events_per_s"), c.get("latency_ms_p99"))]  # fmt: skip
        if not pts:
            continue
        st = _style(row)
        ax.plot(*zip(*pts, strict=True), marker="o", markersize=3, label=row, **st)
        k = marks.get(row)
        if k and _finite(k.get("events_per_s"), k.get("latency_ms_p99")):
            face = "none" if k.get("lower_bound") else st["color"]
            ax.plot(
                k["events_per_s"], k["latency_ms_p99"], marker="*", markersize=14,
                markerfacecolor=face, markeredgecolor=st["color"], linestyle="none",
            )  # fmt: skip
    if limit_ms:
        ax.axhline(limit_ms, color="grey", linewidth=0.8)
        ax.annotate(f"p99 limit {limit_ms:g} ms", (0.01, limit_ms), xycoords=("axes fraction",
                    "data"), fontsize=8, color="grey", va="bottom")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("delivered events/s (all subscribers)")
    ax.set_ylabel("p99 latency, ms (publisher stamp to read)")
    ax.set_title("Where each transport breaks (star: knee; hollow: lower bound)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def shootout(cells: Cells, path: Path, limit_ms: float = 500.0) -> Path | None:
    """Broadcast p95 vs clients, pushlab against Node (hashrocket's rule)."""
    by_row = steps(cells, "shootout")
    if not by_row:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for row, rs in by_row.items():
        pts = [(c["subscribers"], c["latency_ms_p95"]) for c in rs
               if _finite(c.get("subscribers"), c.get("latency_ms_p95"))]  # fmt: skip
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=row, **_style(row))
    ax.axhline(limit_ms, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("connected clients (one broadcast feed)")
    ax.set_ylabel("broadcast p95 latency, ms")
    ax.set_title(f"Clients until broadcast p95 crosses {limit_ms:g} ms")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_all(cells: Cells, figures_dir: Path, limit_ms: float | None = None) -> dict[str, Path]:
    """Both figures the rows support, into ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, p in ((LATENCY, latency(cells, figures_dir / LATENCY, limit_ms)),
                    (SHOOTOUT, shootout(cells, figures_dir / SHOOTOUT))):  # fmt: skip
        if p is not None:
            out[name] = p
    return out
