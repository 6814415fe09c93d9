"""Report sections on delivery: the run, loss checks, latency, throughput, Locust and skips."""

from __future__ import annotations

import math

from experiments.matrix import variant
from experiments.plots import label, ok
from experiments.records import BenchMeta
from experiments.report_base import Cells, Section, f, source


def run_section(meta: BenchMeta, cells: Cells) -> Section:
    m = meta.get("machine", {})
    load = m.get("load_avg", [math.nan])[0]
    gens = sorted({c.get("generator", "-") for c in cells if c.get("status") == "ok"})
    s = Section("Run")
    s.text.append(
        f"Profile `{meta['params']['profile']}`, {len(cells)} cells, git `{m.get('git_commit')}`"
        f"{' (dirty)' if m.get('git_dirty') else ''}; {m.get('cpu')}, {m.get('cores')} cores, "
        f"Python {m.get('python')}; load average {f(load)} when the run started."
    )
    cores = m.get("cores")
    if isinstance(load, float) and cores and load > 0.5 * cores:
        s.text.append(
            f"The machine was busy (load {f(load)} on {cores} cores): absolute figures are "
            "noisy; compare transports within this run only."
        )
    s.text.append(
        "Load generators: `asyncio` = the lab's own clients (`clients/`) on uvloop in separate "
        "processes (`experiments/loadgen.py`); `locust` = Locust headless. Every table names the "
        f"generator of each row. Generators used here: {', '.join(gens) or 'none'}."
    )
    impls = sse_impls(meta, cells)
    if impls:
        s.text.append(
            "Python SSE rows labelled `sse` ran `sse_impl` = "
            + ", ".join(f"`{i}`" for i in impls)
            + " (the server setting, saved with each server in meta.json); rows labelled "
            "`sse_impl=...` ran the implementation they name."
        )
    for reason in meta["params"].get("dropped", []):
        s.text.append(f"Not run (this build lacks what the cell needs): {reason}.")
    if meta.get("interrupted"):
        s.text.append("The run was interrupted: only the finished cells are shown.")
    return s


def sse_impls(meta: BenchMeta, cells: Cells) -> list[str]:
    """The SSE implementations behind the Python ``sse`` rows that name none (the default's)."""
    servers = meta.get("servers", [])
    found = {
        servers[c["server_index"]].get("settings", {}).get("sse_impl", "?")
        for c in cells
        if c.get("transport") == "sse"
        and c.get("server") == "python"
        and not variant(c.get("server_env"))
        and isinstance(c.get("server_index"), int)
        and c["server_index"] < len(servers)
    }
    return sorted(found)


def integrity_section(cells: Cells) -> Section:
    done = ok(cells)
    lost = sum(c.get("lost", 0) for c in done)
    dup = sum(c.get("duplicates", 0) for c in done)
    delivered = sum(c.get("delivered", 0) for c in done)
    bound = [c["cell"] for c in cells if c.get("generator_bound")]
    s = Section("Delivery and load-generator checks")
    s.text.append(
        f"{delivered:,} events delivered over {len(done)} cells: {lost} lost and {dup} duplicated "
        "(seq tracking per subscriber; lost = seqs missing inside a subscriber's window)."
    )
    s.text.append(
        "Generator-bound cells (a load-generator process used >= 90% of a core; their throughput "
        "and latency are the generator's limit, not the server's): "
        + (", ".join(f"`{b}`" for b in bound) if bound else "none.")
    )
    return s


def headline_section(cells: Cells) -> Section:
    chosen = sorted(ok(cells, "headline"), key=label)
    s = Section("Latency at the headline load", "latency_cdf.png")
    s.header = [
        "transport",
        "generator",
        "subs",
        "rate",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "events/s",
        "gen CPU %",
        "gen-bound",
    ]
    for c in chosen:
        s.rows.append(
            [
                label(c),
                c["generator"],
                f(c["subscribers"]),
                f(c["rate"]),
                *(f(c.get(f"latency_ms_{k}")) for k in ("p50", "p90", "p99", "max")),
                f(c["events_per_s"]),
                f(c["generator_cpu_pct"]),
                f(c["generator_bound"]),
            ]
        )
    timed = [c for c in chosen if "latency_ms_p99" in c]
    if timed:
        best = min(timed, key=lambda c: c["latency_ms_p99"])
        worst = max(timed, key=lambda c: c["latency_ms_p99"])
        s.text.append(
            f"Lowest p99: {label(best)} at {f(best['latency_ms_p99'])} ms; highest: "
            f"{label(worst)} at {f(worst['latency_ms_p99'])} ms "
            f"({f(worst['latency_ms_p99'] / best['latency_ms_p99'])}x)."
        )
    for c in timed:
        if c["transport"] == "poll":
            iv = c["client"]["interval_s"]
            s.text.append(
                f"Short polling every {f(iv)} s: mean latency {f(c['latency_ms_mean'])} ms against "
                f"{f(1000 * iv / 2)} ms for interval/2: the interval, not the server, sets it."
            )
    s.text.append(source(chosen))
    return s


def throughput_section(cells: Cells) -> Section:
    chosen = sorted(ok(cells, "subs"), key=lambda c: (label(c), c["subscribers"]))
    s = Section("Delivered events/s against subscribers", "throughput_vs_subscribers.png")
    s.header = [
        "transport",
        "subs",
        "offered/s",
        "delivered/s",
        "delivered/offered",
        "server CPU %",
        "gen CPU %",
        "gen-bound",
    ]
    for c in chosen:
        offered = c["rate"] * c["subscribers"]
        s.rows.append(
            [
                label(c),
                f(c["subscribers"]),
                f(offered),
                f(c["events_per_s"]),
                f(c["events_per_s"] / offered),
                f(c["server_cpu_pct"]),
                f(c["generator_cpu_pct"]),
                f(c["generator_bound"]),
            ]
        )
    short = [c for c in chosen if c["events_per_s"] < 0.95 * c["rate"] * c["subscribers"]]
    s.text.append(
        "Every cell delivered >= 95% of the offered load."
        if not short
        else "Cells below 95% of the offered load: "
        + ", ".join(f"{label(c)} at {c['subscribers']} ({f(c['events_per_s'])}/s)" for c in short)
        + "."
    )
    s.text.append(source(chosen))
    return s


def others_section(cells: Cells) -> Section:
    s = Section("Locust, skipped and failed cells")
    s.header = [
        "cell",
        "status",
        "generator",
        "delivered",
        "p50 ms",
        "p99 ms",
        "gen CPU %",
        "gen-bound",
        "reason",
    ]
    for c in cells:
        if c.get("kind") == "locust" or c.get("status") != "ok":
            s.rows.append(
                [
                    f"`{c['cell']}`",
                    c.get("status", "-"),
                    c.get("generator", "-"),
                    f(c.get("delivered")),
                    f(c.get("latency_ms_p50")),
                    f(c.get("latency_ms_p99")),
                    f(c.get("generator_cpu_pct")),
                    f(c.get("generator_bound")),
                    str(c.get("reason", "")),
                ]
            )
    for c in cells:
        if c.get("kind") != "locust" or c.get("status") != "ok":
            continue
        twin = next((a for a in ok(cells) if a["transport"] == c["transport"]
                     and a["subscribers"] == c["subscribers"] and a["rate"] == c["rate"]
                     and a.get("server") == c.get("server")), None)  # fmt: skip
        if twin is not None:
            s.text.append(
                f"Same load through both generators ({c['transport']}, {c['subscribers']} "
                f"subscribers, {f(c['rate'])} events/s): Locust p50/p99 "
                f"{f(c.get('latency_ms_p50'))}/{f(c.get('latency_ms_p99'))} ms at "
                f"{f(c.get('generator_cpu_pct'))}% generator CPU; asyncio "
                f"{f(twin.get('latency_ms_p50'))}/{f(twin.get('latency_ms_p99'))} ms at "
                f"{f(twin.get('generator_cpu_pct'))}%."
            )
    if not s.rows:
        s.text.append("None.")
    return s
