"""Report sections on costs: bytes on the wire, CPU, poll interval, memory per connection."""

from __future__ import annotations

import math

from experiments.plots import label, ok
from experiments.records import BenchCell
from experiments.report_base import Cells, Section, f, source


def bytes_section(cells: Cells) -> Section:
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
    s.text.append(source(chosen))
    return s


def _why(c: BenchCell) -> str:
    """A generated explanation for a cell whose measurement is off the formula by > 2%."""
    d = c["wire_vs_formula_pct"]
    if abs(d) <= 2:
        return ""
    if "deflate" in label(c):
        return "permessage-deflate was negotiated; the formula counts uncompressed frames."
    if c["transport"] in ("sse", "stream") and d < 0:
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


def cpu_section(cells: Cells) -> Section:
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
    s.text.append(source(chosen))
    return s


def interval_section(cells: Cells) -> Section:
    chosen = sorted(
        (c for c in ok(cells, "interval") if c["transport"] == "poll" and "latency_ms_mean" in c),
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
            f"interval + round trip: measured {f(period_ms)} ms ({c['requests']} requests from "
            f"{c['subscribers']} subscribers in {f(c['window_s'])} s, so whole polls only), half "
            f"of it {f(period_ms / 2)} ms."
        )
    s.text.append(source(chosen))
    return s


def memory_section(cells: Cells) -> Section:
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
    sse = {label(c): c["memory_per_connection_kb"] for c in chosen if c["transport"] == "sse"}
    if len(sse) > 1:
        s.text.append(
            "SSE twice, same protocol and bytes on the wire, two server implementations: "
            + ", ".join(f"{lab} {f(kb)} KiB" for lab, kb in sse.items())
            + ". The difference is what each keeps per open stream (sse-starlette: an anyio task "
            "group with a stream task, a ping task and a disconnect listener; pushlab's: the "
            "request's own task), not the protocol: docs/performance.md, `python -m "
            "experiments.idle_memory sse 1000 --by package`."
        )
    s.text.append(source(chosen))
    return s
