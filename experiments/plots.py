"""Figures from saved results only (``summary.json``): matplotlib with the Agg backend, PNG files.

Every function takes the cells of one results folder and a path, draws one figure and returns the
path, or None when the folder has no cell for it (a profile without that sweep). Nothing here runs
an experiment.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from experiments.matrix import variant  # noqa: E402
from experiments.records import BenchCell  # noqa: E402
from feed.wire.contract import TRANSPORTS, WEBTRANSPORT  # noqa: E402

Cells = list[BenchCell]
COLORS = {
    "poll": "tab:red",
    "long-poll": "tab:orange",
    "sse": "tab:blue",
    "ws": "tab:green",
    "stream": "tab:purple",
    WEBTRANSPORT: "tab:brown",
}
ORDER = (*TRANSPORTS, WEBTRANSPORT)


def ok(cells: Iterable[BenchCell], tag: str | None = None, kind: str = "asyncio") -> Cells:
    """Cells that measured something, of one ``kind``, optionally with ``tag``."""
    return [
        c
        for c in cells
        if c.get("status") == "ok"
        and c.get("kind") == kind
        and (tag is None or tag in c.get("tags", []))
    ]


def label(c: BenchCell) -> str:
    """``ws``, ``node ws``, ``ws deflate``, ``ws h2-tls``, ``sse sse_impl=pushlab``: what tells
    rows apart."""
    name = c["transport"] if c.get("server") == "python" else f"{c['server']} {c['transport']}"
    if c["transport"] == "ws" and c.get("client", {}).get("compression"):
        name += " deflate"
    if c.get("proto", "h1") != "h1":
        name += f" {c.get('proto')}"
    return " ".join([str(name), *variant(c.get("server_env"))])


def _by_label(cells: Cells) -> dict[str, Cells]:
    out: dict[str, Cells] = defaultdict(list)
    for c in sorted(
        cells, key=lambda c: (ORDER.index(c["transport"]), c.get("server") != "python")
    ):
        out[label(c)].append(c)
    return dict(out)


class _Style(TypedDict):
    color: str
    linestyle: str
    marker: str


def _style(lab: str) -> _Style:
    transport = next(word for word in lab.split() if word in COLORS)
    node = lab.startswith("node")
    return {
        "color": COLORS[transport],
        "linestyle": "--" if node else "-",
        "marker": "s" if node else "o",
    }


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency_cdf(cells: Cells, path: Path) -> Path | None:
    """End-to-end latency CDF per transport at the headline load."""
    chosen = [c for c in ok(cells, "headline") if c.get("latency_cdf")]
    if not chosen:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for lab, cs in _by_label(chosen).items():
        c = cs[0]
        xs = [max(ms, 1e-3) for _, ms in c["latency_cdf"]]
        ys = [q for q, _ in c["latency_cdf"]]
        ax.plot(
            xs, ys, drawstyle="steps-post", label=f"{lab} (n={c['subscribers']})", **_style(lab)
        )
    c0 = chosen[0]
    ax.set(
        xscale="log",
        xlabel="end-to-end latency, ms (log)",
        ylabel="fraction of events",
        title=f"Latency CDF at {c0['subscribers']} subscribers, {c0['rate']:g} events/s",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def throughput(cells: Cells, path: Path) -> Path | None:
    """Delivered events/s against subscribers, with the offered load (rate x subscribers)."""
    chosen = ok(cells, "subs")
    if not chosen:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for lab, cs in _by_label(chosen).items():
        cs = sorted(cs, key=lambda c: c["subscribers"])
        ax.plot(
            [c["subscribers"] for c in cs],
            [c["events_per_s"] for c in cs],
            label=lab,
            **_style(lab),
        )
        bound = [c for c in cs if c.get("generator_bound")]
        ax.scatter(
            [c["subscribers"] for c in bound],
            [c["events_per_s"] for c in bound],
            marker="x",
            s=120,
            color="black",
            zorder=5,
        )
    ns = sorted({c["subscribers"] for c in chosen})
    rate = chosen[0]["rate"]
    ax.plot(ns, [n * rate for n in ns], ":", color="gray", label="offered (rate x subscribers)")
    ax.set(
        xlabel="subscribers",
        ylabel="delivered events/s (all subscribers)",
        title="Throughput (x = generator-bound cell)",
        xscale="log",
        yscale="log",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def bytes_vs_rate(cells: Cells, path: Path) -> Path | None:
    """Wire bytes per delivered event (both directions) against event rate, with the formula."""
    chosen = [c for c in ok(cells, "rate") if "wire_bytes_per_event" in c]
    if not chosen:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for lab, cs in _by_label(chosen).items():
        cs = sorted(cs, key=lambda c: c["rate"])
        style = _style(lab)
        ax.plot(
            [c["rate"] for c in cs],
            [c["wire_bytes_per_event"] for c in cs],
            label=f"{lab} measured",
            **style,
        )
        ax.plot(
            [c["rate"] for c in cs],
            [c["formula_bytes_per_event"] for c in cs],
            linestyle=":",
            color=style["color"],
            marker="x",
            label=f"{lab} formula",
        )
    app = chosen[0].get("app_bytes_per_event")
    if app:
        ax.axhline(app, color="gray", linewidth=0.8, label=f"event JSON ({app:.0f} B)")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="events/s published",
        ylabel="bytes on the wire per delivered event",
        title="Wire cost per event (both directions)",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def cpu_per_event(cells: Cells, path: Path) -> Path | None:
    """Server CPU seconds per 1,000 delivered events at the headline load."""
    chosen = [c for c in ok(cells, "headline") if _finite(c.get("server_cpu_s_per_1k_events"))]
    if not chosen:
        return None
    groups = _by_label(chosen)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    labels = list(groups)
    values = [groups[lab][0]["server_cpu_s_per_1k_events"] for lab in labels]
    ax.bar(
        labels,
        values,
        color=[_style(lab)["color"] for lab in labels],
        hatch=None,
        edgecolor="black",
    )
    for i, v in enumerate(values):
        ax.annotate(f"{v:.3g}", (i, v), ha="center", va="bottom", fontsize=8)
    ax.set(
        ylabel="server CPU s per 1,000 delivered events",
        title="Server CPU per event (headline load)",
    )
    return _save(fig, path)


def poll_interval(cells: Cells, path: Path) -> Path | None:
    """Short-poll interval against mean latency and request load, theory beside measurement."""
    chosen = sorted(
        (c for c in ok(cells, "interval") if c["transport"] == "poll" and "latency_ms_mean" in c),
        key=lambda c: c["client"]["interval_s"],
    )
    if not chosen:
        return None
    iv = [c["client"]["interval_s"] for c in chosen]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 4))
    a1.plot(
        iv,
        [c["latency_ms_mean"] for c in chosen],
        "o-",
        color=COLORS["poll"],
        label="measured mean",
    )
    a1.plot(iv, [1000 * i / 2 for i in iv], ":", color="gray", label="theory: interval / 2")
    a1.set(xlabel="poll interval, s", ylabel="mean latency, ms", title="Latency")
    rps = [c["requests"] / c["window_s"] / c["subscribers"] for c in chosen]
    a2.plot(iv, rps, "o-", color=COLORS["poll"], label="measured")
    a2.plot(iv, [1 / i for i in iv], ":", color="gray", label="theory: 1 / interval")
    a2.set(
        xlabel="poll interval, s",
        ylabel="requests/s per subscriber",
        title="Request load",
        yscale="log",
    )
    for a in (a1, a2):
        a.grid(True, alpha=0.3)
        a.legend(fontsize=8)
    return _save(fig, path)


def memory(cells: Cells, path: Path) -> Path | None:
    """Server memory per idle connection."""
    chosen = [
        c for c in ok(cells, "idle", kind="idle") if _finite(c.get("memory_per_connection_kb"))
    ]
    if not chosen:
        return None
    groups = _by_label(chosen)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    labels = list(groups)
    values = [groups[lab][0]["memory_per_connection_kb"] for lab in labels]
    ax.bar(labels, values, color=[_style(lab)["color"] for lab in labels], edgecolor="black")
    n = chosen[0]["idle_connections"]
    ax.set(ylabel="server RSS growth per connection, KiB", title=f"Memory at {n} idle connections")
    return _save(fig, path)


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def hpack_requests(cells: Cells, path: Path) -> Path | None:
    """Bytes per short-poll request on one connection, request by request, per HTTP version."""
    chosen = ok(cells, "hpack", kind="hpack")
    if not chosen:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for c in chosen:
        total = [u + d for u, d in zip(c["request_up_bytes"], c["request_down_bytes"], strict=True)]
        ax.plot(range(1, len(total) + 1), total, marker="o", label=str(c.get("proto", "h1")))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_yscale("log")
    ax.set(
        xlabel="request on the connection (1 = with TLS / HTTP/2 setup)",
        ylabel="bytes on the socket (up + down)",
        title="Short poll: bytes per request (HPACK from request 2)",
    )
    ax.legend()
    return _save(fig, path)


FIGURES: dict[str, Callable[[Cells, Path], Path | None]] = {
    "latency_cdf.png": latency_cdf,
    "throughput_vs_subscribers.png": throughput,
    "bytes_vs_rate.png": bytes_vs_rate,
    "cpu_per_1k_events.png": cpu_per_event,
    "poll_interval.png": poll_interval,
    "memory_per_connection.png": memory,
    "hpack_requests.png": hpack_requests,
}


def draw_all(cells: Cells, figures_dir: Path) -> dict[str, Path]:
    """Every figure the cells support, into ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, fn in FIGURES.items():
        p = fn(cells, figures_dir / name)
        if p is not None:
            out[name] = p
    return out
