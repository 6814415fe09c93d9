"""``pushlab explain poll``: a ``/poll`` and a ``/long-poll`` on ONE keep-alive connection.

Shows every byte both ways and how much of it is HTTP overhead (request, response head, batch
envelope) against the events themselves. Two requests, one TCP connection: HTTP/1.1 keeps it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from clients.explain.wire import Wire
from feed.wire.contract import CURSOR_HEADER, PATHS
from feed.wire.http1 import get_request


def _exchange(wire: Wire, target: str) -> dict[str, Any]:
    request = get_request(wire.authority, target)
    wire.send(request)
    head = wire.read_head()
    raw_body, payload = wire.read_body(head)
    events: list[Any] = []
    if head.status == 200 and payload:
        events = orjson.loads(payload).get("events", [])
    event_bytes = sum(len(orjson.dumps(e)) for e in events)
    total = len(request) + len(head.raw) + len(raw_body)
    return {
        "target": target,
        "request": request.decode(),
        "response_head": head.raw.decode("latin-1"),
        "body": payload.decode("utf-8", "replace"),
        "status": head.status,
        "events": len(events),
        "cursor": orjson.loads(payload).get("cursor") if head.status == 200 else None,
        "header_cursor": head.headers.get(CURSOR_HEADER.lower()),
        "bytes": {
            "request": len(request),
            "response_head": len(head.raw),
            "body": len(raw_body),
            "events": event_bytes,
            "total": total,
        },
        "overhead_fraction": round(1 - event_bytes / total, 4) if total else None,
        "local_port": wire.local_port,
    }


def explain(
    url: str, topic: str = "ticks", since: int | None = None, timeout: float = 1.0
) -> dict[str, Any]:
    """Poll once, then long-poll from one event back (or wait ``timeout`` s for a 204)."""
    with Wire(url, timeout=timeout + 5) as wire:
        q = {"topic": topic} | ({} if since is None else {"since": str(since)})
        poll = _exchange(wire, f"{PATHS['poll']}?{urlencode(q)}")
        cursor = int(poll["cursor"] or 0)
        lp_query = {"topic": topic, "since": str(max(cursor - 1, 0)), "timeout": str(timeout)}
        long_poll = _exchange(wire, f"{PATHS['long-poll']}?{urlencode(lp_query)}")
        sent, received = wire.sent, wire.received
    return {
        "url": url,
        "exchanges": [poll, long_poll],
        "tcp_connections": 1,
        "same_local_port": poll["local_port"] == long_poll["local_port"],
        "bytes_sent": sent,
        "bytes_received": received,
    }


def render(report: dict[str, Any]) -> str:
    """Terminal text."""
    out = []
    for ex in report["exchanges"]:
        b = ex["bytes"]
        out += [
            f"=== {ex['target']}  (local port {ex['local_port']})",
            "--- request",
            ex["request"].rstrip("\r\n").replace("\r\n", "\n"),
            "--- response head",
            ex["response_head"].rstrip("\r\n").replace("\r\n", "\n"),
            f"--- body ({b['body']} bytes): {ex['body'][:300]}",
            f"bytes: request {b['request']} + response head {b['response_head']} + body "
            f"{b['body']} = {b['total']}; the {ex['events']} event(s) themselves: {b['events']} "
            f"-> overhead {ex['overhead_fraction']:.1%}",
            "",
        ]
    out.append(
        f"{len(report['exchanges'])} requests on {report['tcp_connections']} TCP connection "
        f"(HTTP/1.1 keep-alive; same local port: {report['same_local_port']})"
    )
    return "\n".join(out)
