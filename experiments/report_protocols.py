"""Report section: every transport over each HTTP version (issue 20, ``protocols`` profile)."""

from __future__ import annotations

from typing import Any

from experiments.matrix import PROTOS, who
from experiments.plots import ok
from experiments.records import BenchCell
from experiments.report_base import Cells, Section, f, source
from feed.wire.contract import TRANSPORTS, WEBTRANSPORT


def proto(c: BenchCell) -> str:
    """The cell's HTTP version; runs from before the dimension are plaintext HTTP/1.1."""
    return str(c.get("proto", "h1"))


def _load(c: BenchCell) -> tuple[Any, ...]:
    """What must match for two cells to differ only in their protocol."""
    client = tuple(
        sorted((k, str(v)) for k, v in c.get("client", {}).items() if k not in ("http2", "http3"))
    )
    env = tuple(sorted(c.get("server_env", {}).items()))
    return (c["transport"], c["subscribers"], c["rate"], c["size"], c.get("server"), env, client)


def chosen(cells: Cells) -> list[BenchCell]:
    """The ``protocols`` cells and, for each, its plaintext HTTP/1.1 twin (same load)."""
    tagged = ok(cells, "protocols")
    loads = {_load(c) for c in tagged}
    twins = [c for c in ok(cells) if proto(c) == "h1" and _load(c) in loads]
    rows = {c["cell"]: c for c in tagged + twins}.values()
    order = [*TRANSPORTS, *sorted({c["transport"] for c in rows} - set(TRANSPORTS))]
    return sorted(
        rows,
        key=lambda c: (order.index(c["transport"]), _who(c) != "pushlab", PROTOS.index(proto(c))),
    )


def _who(c: BenchCell) -> str:
    return who(str(c.get("server", "python")))


def _idle_kb(cells: Cells) -> dict[tuple[str, str, str], float]:
    """Server memory per idle connection by (transport, server, protocol) (``protocols-idle``)."""
    return {
        (c["transport"], _who(c), proto(c)): float(c["memory_per_connection_kb"])
        for c in ok(cells, "protocols-idle", kind="idle")
        if not c.get("server_env") or c["transport"] == WEBTRANSPORT
    }


def protocols_section(cells: Cells) -> Section | None:
    """One table, transport x HTTP version; None for runs without protocol cells."""
    rows = chosen(cells)
    if not any(proto(c) != "h1" for c in rows):
        return None
    idle = _idle_kb(cells)
    s = Section("Transport x HTTP version (h1, h1 over TLS, h2 over TLS, h3)")
    s.header = [
        "transport",
        "server",
        "HTTP",
        "subs x rate",
        "events/s delivered",
        "p99 ms",
        "wire bytes/event",
        "server CPU s / 1k events",
        "server RSS MB",
        "KiB / idle connection",
    ]
    for c in rows:
        s.rows.append(
            [
                c["transport"],
                _who(c),
                proto(c),
                f"{c['subscribers']} x {f(c['rate'])}",
                f(c.get("events_per_s")),
                f(c.get("latency_ms_p99")),
                f(c.get("wire_bytes_per_event")),
                f(c.get("server_cpu_s_per_1k_events")),
                f(c.get("server_rss_mb")),
                f(idle.get((c["transport"], _who(c), proto(c)))),
            ]
        )
    s.text.append(
        "h1: uvicorn, plaintext HTTP/1.1 (the other sections). h1-tls: the same server with TLS "
        "(ALPN http/1.1). h2-tls: the same app under hypercorn, ALPN h2; poll, long-poll and SSE "
        "on httpx's HTTP/2, the WebSocket on one HTTP/2 stream (RFC 8441). One connection per "
        "subscriber in every cell. Wire bytes: TCP payload of the client sockets (kernel "
        "counters), so TLS records (5-byte headers, AEAD tags, handshakes of new connections) "
        "and HTTP/2 frame headers and HPACK-coded headers are in; results/README.md. h2-tls "
        "against h1-tls changes the server too (hypercorn, without uvicorn's fast paths). "
        "node: baseline/node/server.js on node:http, node:https and node:http2's secure server "
        "(compatibility API); its WebSocket (ws) has no HTTP/2 form, so that cell is not run. "
        "h3: the same hypercorn serving HTTP/3 over QUIC (aioquic) on UDP at the same port "
        "number, the clients on httpx over aioquic (clients/h3http.py); its wire bytes are the "
        "UDP payload of the generators' QUIC connections, counted by the clients (UDP sockets "
        "keep no byte counters), so QUIC packet headers, ACKs and QPACK are in. No WebSocket "
        "over HTTP/3 (RFC 9220: no browser ships it) and no Node HTTP/3 (Node 20 has no QUIC). "
        "wt: WebTransport, the same hypercorn process serving it from aioquic on a UDP port of "
        "its own (servers/webtransport/), one QUIC connection and one session per subscriber. "
        "KiB / idle connection: server RSS growth over that many idle subscribers on a fresh "
        "server of the same protocol, divided by the connections open (TLS session state and, "
        "over h2, one HTTP/2 connection per subscriber, over h3 one QUIC connection, are in it); "
        "'-' where not measured."
    )
    s.text += _ratios(rows)
    s.text.append(source(rows))
    return s


def _ratios(rows: list[BenchCell]) -> list[str]:
    """Generated sentences: each protocol's cost against plaintext HTTP/1.1, per transport."""
    out = []
    by = {(c["transport"], _who(c), proto(c)): c for c in rows}
    for (t, server, p), c in by.items():
        base = by.get((t, server, "h1"))
        if p == "h1" or base is None:
            continue
        bits = []
        for key, what in (
            ("server_cpu_s_per_1k_events", "server CPU per event"),
            ("wire_bytes_per_event", "bytes per event"),
        ):
            a, b = c.get(key), base.get(key)
            if isinstance(a, float) and isinstance(b, float) and b > 0:
                bits.append(f"{what} x{f(a / b, 2)}")
        if bits:
            out.append(f"{server} {t} over {p} against h1: {', '.join(bits)}.")
    return out


def hpack_section(cells: Cells) -> Section | None:
    """Short-poll bytes per request on one connection: first, second, steady; per protocol."""
    rows = sorted(ok(cells, "hpack", kind="hpack"), key=lambda c: PROTOS.index(proto(c)))
    if not rows:
        return None
    s = Section("Header compression: short-poll bytes per request on one connection",
                "hpack_requests.png")  # fmt: skip
    s.header = ["HTTP", "request 1 up/down", "request 2 up/down", "steady up", "steady total"]
    for c in rows:
        up, down = c["request_up_bytes"], c["request_down_bytes"]
        s.rows.append(
            [
                proto(c),
                f"{up[0]} / {down[0]}",
                f"{up[1]} / {down[1]}",
                f(c["steady_request_up_bytes"]),
                f(c["steady_request_bytes"]),
            ]
        )
    n = len(rows[0]["request_up_bytes"])
    s.text.append(
        f"{n} polls in a row on one connection, on a topic nobody publishes to (every answer the "
        "same empty poll), counted on the client socket after each answer (experiments/hpack.py). "
        "Request 1 carries the connection's setup (TLS handshake, HTTP/2 preface and SETTINGS); "
        "over h3 the counts are the QUIC connection's UDP payload as the client sees it (its "
        "ACKs and QPACK's encoder stream included). Steady = median of requests 3 to n."
    )
    by = {proto(c): c for c in rows}
    if "h2-tls" in by and "h1-tls" in by:
        h2, h1 = by["h2-tls"], by["h1-tls"]
        s.text.append(
            f"In steady state a poll costs {f(h2['steady_request_bytes'])} bytes over h2 against "
            f"{f(h1['steady_request_bytes'])} over h1 with TLS; the request alone "
            f"{f(h2['steady_request_up_bytes'])} against {f(h1['steady_request_up_bytes'])} bytes."
        )
    if "h3" in by:
        h3 = by["h3"]
        s.text.append(
            f"Over h3 a steady poll costs {f(h3['steady_request_bytes'])} bytes, the request "
            f"{f(h3['steady_request_up_bytes'])}."
        )
    return s


def multiplex_section(cells: Cells) -> Section | None:
    """Many SSE streams: one HTTP/2 connection against one connection per subscriber."""
    rows = ok(cells, "multiplex")
    if not rows:
        return None
    s = Section("Many SSE streams: one HTTP/2 connection against one connection each")
    s.header = [
        "HTTP", "subscribers", "connections", "events/s", "p99 ms", "wire bytes/event",
        "server CPU s / 1k events", "server RSS MB",
    ]  # fmt: skip
    for c in rows:
        s.rows.append(
            [
                proto(c),
                f(c["subscribers"]),
                f(c.get("wire_connections")),
                f(c.get("events_per_s")),
                f(c.get("latency_ms_p99")),
                f(c.get("wire_bytes_per_event")),
                f(c.get("server_cpu_s_per_1k_events")),
                f(c.get("server_rss_mb")),
            ]
        )
    s.text.append(
        "Connections: client sockets open at the end of the window (ss). One connection: every "
        "subscriber's stream on one httpx pool over HTTP/2 (up to the server's "
        "SETTINGS_MAX_CONCURRENT_STREAMS, 100 under hypercorn); the browser's case, where "
        "HTTP/1.1 would stop at six per host. Server RSS is the process's at the end of the "
        "cell, after the same server's earlier cells."
    )
    s.text.append(source(rows))
    return s
