"""Figure of an RTT run, drawn from its saved ``summary.json`` only."""

from __future__ import annotations

from pathlib import Path

from experiments.results import load_rtt


def plot_rtt(path: Path | str) -> Path:
    """``figures/rtt.png``: p50 (solid) and p99 (dashed) round trip vs payload size, per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, cells = load_rtt(path)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for mode in meta["params"]["modes"]:
        rows = sorted((c for c in cells if c["mode"] == mode), key=lambda c: c["size"])
        if not rows:
            continue
        sizes = [c["size"] for c in rows]
        (line,) = ax.plot(sizes, [c["rtt_us_p50"] for c in rows], marker="o", label=f"{mode} p50")
        ax.plot(
            sizes,
            [c["rtt_us_p99"] for c in rows],
            marker="x",
            linestyle="--",
            color=line.get_color(),
            label=f"{mode} p99",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("payload bytes")
    ax.set_ylabel("round trip, µs")
    p = meta["params"]
    ax.set_title(f"Echo round trip ({p['n']} per cell, uvicorn --ws {p['ws']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    out = Path(path) / "figures" / "rtt.png"
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
