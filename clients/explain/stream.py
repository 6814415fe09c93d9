"""``pushlab explain stream``: the raw bytes of ``/stream`` (NDJSON), chunk by chunk, lines named.

Where ``explain sse`` shows field lines, this shows what an HTTP streaming response is: plain
HTTP/1.1 chunked transfer coding carrying one JSON object per line, nothing else — no ``id:``
for a browser to remember, no ``retry:``; the cursor travels back in a request header.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from clients.explain.wire import Wire
from feed.codec import loads
from feed.wire.contract import CURSOR_HEADER, NDJSON_TYPE, PATHS
from feed.wire.http1 import ChunkedDecoder, get_request

MEANINGS = {
    "ready": "where this connection starts: the cursor to send back as Pushlab-Cursor",
    "gap": "the cursor was not honoured (recovered=false); delivery resumes after resume_after",
    "heartbeat": "keep-alive from the app-wide timer: proof of life, nothing to deliver",
    "end": "the server's goodbye with a reason; reconnect and resume",
    "event": "one event: the same JSON every transport carries (no 'type' key)",
}
CHUNK_SIZE = re.compile(rb"([0-9a-fA-F]+)\r\n")


def annotate_ndjson(text: str) -> list[dict[str, str]]:
    """Each line with its kind (``type``, or ``event``) and what it means."""
    out = []
    for line in text.split("\n"):
        if not line:
            continue
        try:
            obj = loads(line)
        except ValueError:
            out.append({"line": line, "kind": "partial", "meaning": "cut off by the read window"})
            continue
        kind = str(obj.get("type", "event")) if isinstance(obj, dict) else "?"
        out.append({"line": line, "kind": kind, "meaning": MEANINGS.get(kind, "unknown: ignored")})
    return out


def chunks(raw: bytes, limit: int = 6) -> list[dict[str, Any]]:
    """The first ``limit`` chunks exactly as on the wire: size line, body, CRLF."""
    out: list[dict[str, Any]] = []
    pos = 0
    while len(out) < limit and (m := CHUNK_SIZE.match(raw, pos)):
        size = int(m.group(1), 16)
        end = m.end() + size + 2
        out.append({"size_line": m.group(0).decode(), "size": size, "wire": raw[pos:end]})
        pos = end
        if size == 0:
            break
    return out


def explain(
    url: str,
    topic: str = "ticks",
    since: int | None = 0,
    seconds: float = 2.0,
    max_bytes: int = 4096,
    cursor: int | None = None,
) -> dict[str, Any]:
    """Read the stream for ``seconds`` (or ``max_bytes``) and explain every chunk and line."""
    query = {"topic": topic} | ({} if since is None else {"since": str(since)})
    extra = {"Accept": NDJSON_TYPE}
    if cursor is not None:
        extra[CURSOR_HEADER] = str(cursor)
    with Wire(url) as wire:
        request = get_request(wire.authority, f"{PATHS['stream']}?{urlencode(query)}", extra)
        wire.send(request)
        head = wire.read_head()
        body = wire.read_for(seconds, enough=max_bytes)
    chunked = head.headers.get("transfer-encoding") == "chunked"
    payload, framing = body, 0
    if chunked:  # a stream cut off mid-chunk: the decoder passes on the bytes so far
        decoder = ChunkedDecoder()
        payload = decoder.feed(body)
        framing = decoder.framing
    text = payload.decode("utf-8", "replace")
    lines = annotate_ndjson(text)
    events = [x for x in lines if x["kind"] == "event"]
    return {
        "url": url,
        "request": request.decode(),
        "response_head": head.raw.decode("latin-1"),
        "status": head.status,
        "headers": head.headers,
        "chunked": chunked,
        "raw_body": body.decode("utf-8", "replace"),
        "chunks": [
            c | {"wire": c["wire"].decode("utf-8", "replace")}
            for c in (chunks(body) if chunked else [])
        ],
        "stream": text,
        "lines": lines,
        "bytes": {
            "request": len(request),
            "response_head": len(head.raw),
            "chunk_framing": framing,
            "stream": len(payload),
            "event_lines": sum(len(x["line"].encode()) + 1 for x in events),
        },
        "events": len(events),
    }


def render(report: dict[str, Any]) -> str:
    """Terminal text."""
    b = report["bytes"]
    out = [
        "--- request",
        report["request"].rstrip("\r\n").replace("\r\n", "\n"),
        "",
        "--- response head",
        report["response_head"].rstrip("\r\n").replace("\r\n", "\n"),
        "",
    ]
    if report["chunks"]:
        out.append("--- the first chunks as sent (hex size, CRLF, body, CRLF)")
        for c in report["chunks"]:
            out.append(f"  {c['wire'][:110]!r}")
        out.append("")
    out.append(f"--- lines ({'chunk framing removed' if report['chunked'] else 'raw'})")
    for line in report["lines"]:
        out.append(f"  {line['line'][:90]:<92} <- {line['kind']}: {line['meaning']}")
    out += [
        "",
        f"bytes: request {b['request']}, response head {b['response_head']}, chunk framing "
        f"{b['chunk_framing']}, stream {b['stream']} (of which event lines {b['event_lines']})",
    ]
    return "\n".join(out)
