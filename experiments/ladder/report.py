"""Report of a ladder or storm folder, from its saved files only: ``report.md`` and figures.

python -m experiments.ladder.report results/<UTC>_ladder      # or pushlab plot <folder>
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments import (
    ratios,
    results,  # noqa: E402
)
from experiments.ladder.targets import rows as target_rows
from experiments.plots import COLORS  # noqa: E402
from experiments.records import LadderCell, RungParams, StormCell  # noqa: E402
from experiments.report_base import Section, f  # noqa: E402

LADDER_HEADER = [
    "rung", "open", "KiB RSS/conn", "KiB tcp mem/conn", "KiB slab/conn", "handshakes/s",
    "connect errors (503 evicted)", "idle CPU %", "broadcast p50/p99/last ms", "/healthz p99 ms",
    "status",
]  # fmt: skip
STORM_HEADER = [
    "cell", "jitter", "clients", "back p50/p99 s", "resumed p50/p99 s", "lost", "dup", "gaps",
    "connect attempts", "server CPU s (peak %)", "status",
]  # fmt: skip


def _label(c: RungParams) -> str:
    impl = f" {c['sse_impl']}" if c.get("sse_impl") else ""
    many = f" x{c['workers']}" if c.get("workers", 1) > 1 else ""
    return f"{c['server']}{many} {c['transport']}{impl}"


def memory_figure(cells: Sequence[LadderCell], path: Path) -> Path | None:
    """RSS per idle connection against connections, one line per server and transport."""
    lines: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for c in cells:
        kib = c.get("rss_kib_per_conn", math.nan)
        if c["status"] == "ok" and math.isfinite(kib):
            lines[_label(c)].append((c["n"], kib))
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for lab, pts in sorted(lines.items()):
        xs, ys = zip(*sorted(pts), strict=True)
        node, floor = lab.startswith("node"), lab.startswith("floor")
        ax.plot(xs, ys, marker="s" if node else "x" if floor else "o",
                linestyle="--" if node else ":" if floor else "-",
                color=COLORS[next(w for w in lab.split() if w in COLORS)], label=lab)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("idle connections (one fresh server process per point)")
    ax.set_ylabel("server RSS per connection, KiB")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def storm_figure(folder: Path, cells: Sequence[StormCell], path: Path) -> Path | None:
    """Share of clients back against seconds since the restart (raw samples, when kept)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = 0
    for c in cells:
        raw = folder / "raw" / f"storm-{c['name']}-{'jitter' if c.get('jitter') else 'herd'}.npy"
        if not raw.exists():
            continue
        back = np.sort(np.load(raw)) / 1e9
        # Colour: the transport's (experiments.plots); dashed: the herd; thin: Node.
        ax.step(back, np.arange(1, len(back) + 1) / c["n"], where="post",
                color=COLORS.get(c["transport"]), linestyle="-" if c.get("jitter") else "--",
                linewidth=1.0 if c["server"] == "node" else 1.8,
                label=f"{_label(c)}, {'jitter' if c.get('jitter') else 'no jitter'}")  # fmt: skip
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.axhline(0.99, color="grey", linewidth=0.8)
    ax.set_xlabel("seconds since the restart was spawned")
    ax.set_ylabel("share of clients reconnected")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ladder_section(cells: Sequence[LadderCell]) -> Section:
    s = Section("Connection ladder: idle connections per transport", figure="ladder_memory.png")
    s.header = LADDER_HEADER
    for c in cells:
        b = "/".join(f(c.get(k)) for k in ("broadcast_ms_p50", "broadcast_ms_p99",
                                            "broadcast_ms_last"))  # fmt: skip
        s.rows.append([
            c["name"], f(c.get("open")), f(c.get("rss_kib_per_conn")),
            f(c.get("tcp_mem_kib_per_conn")), f(c.get("slab_kib_per_conn")),
            f(c.get("handshakes_per_s")),
            f"{sum(c.get('connect_errors', {}).values())} ({f(c.get('server_evicted_at_least'))})",
            f(c.get("idle_server_cpu_pct")), b, f(c.get("healthz_ms_p99")),
            c.get("status", "-") + (f": {c['error']}" if c.get("error") else ""),
        ])  # fmt: skip
    s.text.append(
        "Each rung runs on a fresh server process. Kernel memory is machine-wide over the "
        "connections (both ends of each loopback connection, and anything else running): TCP "
        "buffer pages (sockstat) and socket objects (slab: TCP sock, inode, file); idle CPU "
        "is the server's over the idle window, which holds at least "
        "one heartbeat of each transport. Connect errors are the clients' count; in brackets, "
        "the server's log count of connections it answered 503 at its cap of pending request "
        "heads (a lower bound with workers)."
    )
    return s


def storm_section(cells: Sequence[StormCell]) -> Section:
    s = Section("Reconnect storm: kill, restart, comeback", figure="storm_comeback.png")
    s.header = STORM_HEADER
    for c in cells:
        hist = c.get("history_survives")
        s.rows.append([
            c["name"], f(c.get("jitter")), f(c.get("connected")),
            f"{f(c.get('back_s_p50'))}/{f(c.get('back_s_p99'))}",
            f"{f(c.get('resumed_s_p50'))}/{f(c.get('resumed_s_p99'))}",
            f(c.get("lost")) if hist else "n/a", f(c.get("duplicates")) if hist else "n/a",
            f(c.get("gaps")) if hist else "n/a", f(c.get("connect_attempts")),
            f"{f(c.get('storm_server_cpu_s'))} ({f(c.get('storm_server_cpu_pct_peak'))})",
            c.get("status", "-") + (f": {c['error']}" if c.get("error") else ""),
        ])  # fmt: skip
    s.text.append(
        "Times are from the moment the restarted server was spawned. Node keeps its history "
        "in memory, so after its restart seqs start over: its row is the handshake part only."
    )
    return s


def ratio_section(folder: Path) -> Section | None:
    path = folder / "ratios.json"
    if not path.exists():
        return None
    s = Section("Targets (issue 18), from this run")
    s.header = ["figure", "python", "node", "ratio", "target", "met", "counts", "note"]
    for r in json.loads(path.read_text())["ratios"]:
        s.rows.append([
            r["figure"], f(r["python"]), f(r["node_ws"]), f(r["ratio"]), r["target"],
            "yes" if r["met"] else "NO", "yes" if r["counts"] else f"no: {r['why_not']}", r["note"],
        ])  # fmt: skip
    return s


def render(path: Path | str) -> Path:
    """Figures and ``report.md`` of a ladder or storm folder."""
    folder = Path(path)
    storm = results.run_name(folder) == "storm"
    figures = folder / "figures"
    figures.mkdir(exist_ok=True)
    if storm:
        meta, storms = results.load_as(folder, StormCell)
        drawn = storm_figure(folder, storms, figures / "storm_comeback.png")
        secs = [storm_section(storms)]
    else:
        meta, rungs = results.load_as(folder, LadderCell)
        # The target rows are analysis of the saved cells, like the figures: drawn again here.
        rows = target_rows(rungs)
        if rows:
            ratios.write(folder, rows)
        drawn = memory_figure(rungs, figures / "ladder_memory.png")
        secs = [s for s in (ladder_section(rungs), ratio_section(folder)) if s is not None]
    out = [f"# pushlab {'reconnect storm' if storm else 'connection ladder'}", ""]
    out += [f"Parameters: `{json.dumps(meta.get('params', {}))}`", ""]
    for s in secs:
        out += [f"## {s.title}", ""]
        if s.figure and drawn is not None and drawn.name == s.figure:
            out += [f"![{s.title}](figures/{s.figure})", ""]
        out += ["| " + " | ".join(s.header) + " |", "|" + "---|" * len(s.header)]
        out += ["| " + " | ".join(r) + " |" for r in s.rows]
        out += ["", *s.text, ""]
    (folder / "report.md").write_text("\n".join(out))
    return folder / "report.md"


if __name__ == "__main__":
    print(render(sys.argv[1]))
