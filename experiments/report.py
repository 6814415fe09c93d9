"""``report.md`` and ``report.html`` of a results folder: figures, tables, generated sentences.

Every number and every comparison in the text is computed here from ``summary.json`` and
``meta.json``; nothing is typed in by hand, so re-rendering an old folder gives the same report.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments import ratios, results
from experiments.plots import draw_all, label, ok

Cells = list[dict[str, Any]]


@dataclass
class Section:
    """A heading, an optional figure, a table and generated sentences."""

    title: str
    figure: str | None = None
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


def f(x: Any, digits: int = 3) -> str:
    """A number for a table: 3 significant digits, '-' when missing."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if not isinstance(x, int | float) or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, float) and abs(x) >= 10**digits:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _source(cells: Cells) -> str:
    """Which load generator produced the rows behind a figure."""
    gens = sorted({str(c.get("generator", "-")) for c in cells})
    return f"Figure and table rows produced by the {', '.join(gens) or 'no'} load generator."


def _run(meta: dict[str, Any], cells: Cells) -> Section:
    m = meta.get("machine", {})
    load = m.get("load_avg", [math.nan])[0]
    gens = sorted({c.get("generator", "-") for c in cells if c.get("status") == "ok"})
    s = Section("Run")
    s.text.append(
        f"Profile `{meta['params']['profile']}`, {len(cells)} cells, git `{m.get('git_commit')}`"
        f"{' (dirty)' if m.get('git_dirty') else ''}; {m.get('cpu')}, {m.get('cores')} cores, "
        f"Python {m.get('python')}; load average {f(load)} when the run started."
    )
    if isinstance(load, float) and m.get("cores") and load > 0.5 * m["cores"]:
        s.text.append(
            f"The machine was busy (load {f(load)} on {m['cores']} cores): absolute figures are "
            "noisy; compare transports within this run only."
        )
    s.text.append(
        "Load generators: `asyncio` = the lab's own clients (`clients/`) on uvloop in separate "
        "processes (`experiments/loadgen.py`); `locust` = Locust headless. Every table names the "
        f"generator of each row. Generators used here: {', '.join(gens) or 'none'}."
    )
    if meta.get("interrupted"):
        s.text.append("The run was interrupted: only the finished cells are shown.")
    return s


def _integrity(cells: Cells) -> Section:
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


def _headline(cells: Cells) -> Section:
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
    s.text.append(_source(chosen))
    return s


def _throughput(cells: Cells) -> Section:
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
    s.text.append(_source(chosen))
    return s


def _bytes(cells: Cells) -> Section:
    chosen = [c for c in ok(cells) if "wire_bytes_per_event" in c]
    chosen = [c for c in chosen if {"rate", "deflate"} & set(c.get("tags", []))]
    chosen.sort(key=lambda c: (label(c), c["rate"]))
    s = Section(
        "Bytes on the wire per delivered event (measured on the socket vs formula)",
        "bytes_vs_rate.png",
    )
    s.header = [
        "transport",
        "rate",
        "event JSON",
        "up",
        "down",
        "total",
        "formula",
        "diff %",
        "requests/event",
        "empty %",
    ]
    for c in chosen:
        s.rows.append(
            [
                label(c),
                f(c["rate"]),
                f(c["app_bytes_per_event"]),
                f(c["wire_up_bytes_per_event"]),
                f(c["wire_down_bytes_per_event"]),
                f(c["wire_bytes_per_event"]),
                f(c["formula_bytes_per_event"]),
                f(c["wire_vs_formula_pct"], 2),
                f(c["requests_per_event"]),
                f(100 * c["empty_fraction"]),
            ]
        )
    s.text.append(
        "Measured = the kernel's per-socket `bytes_sent`/`bytes_received` (ss -ti) of every "
        "client socket over the window, divided by the events delivered over the same interval; "
        "TCP payload, so HTTP headers, chunk framing and WebSocket frame headers are in, IP/TCP "
        "headers are not. Formula: experiments/formulas.py."
    )
    plain = [c for c in chosen if "deflate" not in label(c)]
    if plain:
        worst = max(plain, key=lambda c: abs(c["wire_vs_formula_pct"]))
        s.text.append(
            f"Without compression the largest difference is {f(worst['wire_vs_formula_pct'], 2)}% "
            f"({label(worst)} at {f(worst['rate'])} events/s)."
        )
    for c in chosen:
        why = _why(c)
        if why:
            diff = f(c["wire_vs_formula_pct"], 2)
            s.text.append(f"{label(c)} at {f(c['rate'])} events/s differs by {diff}%: {why}")
    polls = [c for c in plain if c["transport"] == "poll"]
    if polls:
        low = min(polls, key=lambda c: c["rate"])
        wire, app = low["wire_bytes_per_event"], low["app_bytes_per_event"]
        s.text.append(
            f"Short polling at {f(low['rate'])} events/s moves {f(wire)} bytes per event, "
            f"{f(wire / app, 2)}x the event's JSON: {f(100 * low['empty_fraction'])}% of its "
            "requests came back empty and each request carries a full set of request and "
            "response headers."
        )
    s.text.append(_source(chosen))
    return s


def _why(c: dict[str, Any]) -> str:
    """A generated explanation for a cell whose measurement is off the formula by > 2%."""
    d = c["wire_vs_formula_pct"]
    if abs(d) <= 2:
        return ""
    if "deflate" in label(c):
        return "permessage-deflate was negotiated; the formula counts uncompressed frames."
    if c["transport"] == "sse" and d < 0:
        return "under backlog the server writes several events as one chunk, saving chunk framing."
    if c.get("wire_closed_connections"):
        n = c["wire_closed_connections"]
        return f"{n} connection(s) closed inside the window and took their last counts with them."
    if abs(d) <= c.get("wire_edge_pct", 0):
        return (
            f"within the +/-{f(c['wire_edge_pct'], 2)}% that one request or event per subscriber "
            "in flight at each window edge can move (counters are read at two instants)."
        )
    if c["transport"] in ("poll", "long-poll"):
        return (
            f"beyond the +/-{f(c.get('wire_edge_pct'), 2)}% edge estimate: the requests in flight "
            "at the two readings did not balance (their count is in raw/<cell>.responses.npy)."
        )
    return "keep-alive pings or WebSocket control frames, which the formula leaves out."


def _cpu(cells: Cells) -> Section:
    chosen = sorted(ok(cells, "headline"), key=label)
    s = Section("Server CPU per 1,000 delivered events and memory", "cpu_per_1k_events.png")
    s.header = [
        "transport",
        "subs",
        "rate",
        "server CPU s / 1k events",
        "server CPU %",
        "server RSS MB",
    ]
    for c in chosen:
        s.rows.append(
            [
                label(c),
                f(c["subscribers"]),
                f(c["rate"]),
                f(c["server_cpu_s_per_1k_events"]),
                f(c["server_cpu_pct"]),
                f(c["server_rss_mb"]),
            ]
        )
    timed = [c for c in chosen if math.isfinite(c.get("server_cpu_s_per_1k_events", math.nan))]
    if timed:
        ranked = sorted(timed, key=lambda c: c["server_cpu_s_per_1k_events"])
        s.text.append(
            "Cheapest to serve per event: "
            + ", then ".join(f"{label(c)} ({f(c['server_cpu_s_per_1k_events'])} s)" for c in ranked)
            + "."
        )
    s.text.append(
        "Server RSS is read at the end of each cell; cells sharing one server process "
        "see the memory left by earlier cells (see the idle-connection figure below)."
    )
    s.text.append(_source(chosen))
    return s


def _interval(cells: Cells) -> Section:
    chosen = sorted(
        (c for c in ok(cells, "interval") if c["transport"] == "poll"),
        key=lambda c: c["client"]["interval_s"],
    )
    s = Section("Short-poll interval: latency and request load against theory", "poll_interval.png")
    s.header = [
        "interval s",
        "mean latency ms",
        "theory ms",
        "p99 ms",
        "requests/s per sub",
        "theory",
        "empty %",
    ]
    for c in chosen:
        iv = c["client"]["interval_s"]
        rps = c["requests"] / c["window_s"] / c["subscribers"]
        s.rows.append(
            [
                f(iv),
                f(c["latency_ms_mean"]),
                f(500 * iv),
                f(c["latency_ms_p99"]),
                f(rps),
                f(1 / iv),
                f(100 * c["empty_fraction"]),
            ]
        )
    for c in chosen:
        iv = c["client"]["interval_s"]
        rps = c["requests"] / c["window_s"] / c["subscribers"]
        period_ms = 1000 / rps if rps else math.nan
        s.text.append(
            f"At {f(iv)} s the measured mean is {f(c['latency_ms_mean'] / (500 * iv), 2)}x "
            "interval/2. The client waits the interval after each answer, so the real period is "
            f"interval + round trip: measured {f(period_ms)} ms, half of it "
            f"{f(period_ms / 2)} ms."
        )
    s.text.append(_source(chosen))
    return s


def _memory(cells: Cells) -> Section:
    chosen = sorted(ok(cells, "idle", kind="idle"), key=label)
    s = Section("Memory per idle connection", "memory_per_connection.png")
    s.header = [
        "transport",
        "idle connections",
        "RSS before MB",
        "RSS after MB",
        "KiB / connection",
    ]
    for c in chosen:
        s.rows.append(
            [
                label(c),
                f(c["idle_connections"]),
                f(c["server_rss_mb_before"]),
                f(c["server_rss_mb"]),
                f(c["memory_per_connection_kb"]),
            ]
        )
    s.text.append("Short polling holds no connection state between requests, so it has no row.")
    s.text.append(_source(chosen))
    return s


def _others(cells: Cells) -> Section:
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


def _ratios(cells: Cells) -> Section:
    s = Section("Against the Node ws row (issue 8 targets, same run)")
    s.header = ratios.HEADER
    for r in ratios.compute(cells):
        met = "yes" if r["met"] else "NO"
        s.rows.append([
            r["figure"], r["transport"], f(r["rate"]), f(r["python"]), f(r["node_ws"]),
            f(r["ratio"]), r["target"], met, "yes" if r["counts"] else f"no: {r['why_not']}",
        ])  # fmt: skip
    s.text.append(
        "A row counts only when no load generator process of either cell reached 90% of a core "
        "and neither lost an event; memory rows count when the connections stayed open."
    )
    return s


def sections(meta: dict[str, Any], cells: Cells) -> list[Section]:
    """The report's sections, in order (the ratios section only for runs with perf cells)."""
    makers = (_headline, _throughput, _bytes, _cpu, _interval, _memory)
    perf = [_ratios(cells)] if ratios.compute(cells) else []
    return [
        _run(meta, cells),
        _integrity(cells),
        *perf,
        *(m(cells) for m in makers),
        _others(cells),
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
    drawn = draw_all(cells, folder / "figures")
    secs = sections(meta, cells)
    rows = ratios.compute(cells)
    if rows:
        ratios.write(folder, rows)
    (folder / "report.md").write_text(_md(secs, set(drawn)))
    (folder / "report.html").write_text(_html(secs, set(drawn)))
    return folder / "report.md"
