"""``pushlab explain sse``: the raw bytes of ``/sse``, chunk framing peeled off, lines annotated."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from clients.explain.http import annotate_sse, dechunk, get_request
from clients.explain.wire import Wire


def explain(
    url: str,
    topic: str = "ticks",
    since: int | None = 0,
    seconds: float = 2.0,
    max_bytes: int = 4096,
    last_event_id: int | None = None,
) -> dict[str, Any]:
    """Read the stream for ``seconds`` (or ``max_bytes``) and explain every line."""
    query = {"topic": topic} | ({} if since is None else {"since": str(since)})
    extra = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        extra["Last-Event-ID"] = str(last_event_id)
    with Wire(url) as wire:
        request = get_request(wire.authority, f"/sse?{urlencode(query)}", extra)
        wire.send(request)
        head = wire.read_head()
        body = wire.read_for(seconds, enough=max_bytes)
    chunked = head.headers.get("transfer-encoding") == "chunked"
    payload, framing, _ = dechunk(body, partial=True) if chunked else (body, 0, False)
    text = payload.decode("utf-8", "replace")
    lines = annotate_sse(text)
    data_bytes = sum(len(x["value"].encode()) for x in lines if x["kind"] == "data")
    return {
        "url": url,
        "request": request.decode(),
        "response_head": head.raw.decode("latin-1"),
        "status": head.status,
        "headers": head.headers,
        "chunked": chunked,
        "raw_body": body.decode("utf-8", "replace"),
        "stream": text,
        "lines": lines,
        "bytes": {
            "request": len(request),
            "response_head": len(head.raw),
            "chunk_framing": framing,
            "stream": len(payload),
            "data_values": data_bytes,
        },
        "events": sum(1 for x in lines if x["kind"] == "blank"),
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
        f"--- stream ({'chunked: hex size lines removed' if report['chunked'] else 'raw'})",
    ]
    for line in report["lines"]:
        shown = line["line"] if line["line"] else "(blank line)"
        out.append(f"  {shown[:90]:<92} <- {line['kind']}: {line['meaning']}")
    out += [
        "",
        f"bytes: request {b['request']}, response head {b['response_head']}, chunk framing "
        f"{b['chunk_framing']}, stream {b['stream']} (of which data values {b['data_values']})",
    ]
    return "\n".join(out)
