"""``pushlab explain sse``: the raw bytes of ``/sse``, chunk framing peeled off, lines annotated."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from clients.explain.wire import Wire
from feed.wire.contract import PATHS
from feed.wire.http1 import ChunkedDecoder, get_request

SSE_FIELDS = {
    "id": "sets the last event ID (sent back as Last-Event-ID on reconnect)",
    "event": "event type (addEventListener name; default 'message')",
    "data": "one line of the event's data (several data lines join with \\n)",
    "retry": "reconnection delay in ms for EventSource",
}


def annotate_sse(text: str) -> list[dict[str, str]]:
    """Each line of an event stream with what it means (WHATWG HTML §9.2.6 parsing rules)."""
    out = []
    for line in re.split(r"\r\n|\r|\n", text):  # CRLF, lone CR and LF all end a line
        if line == "":
            out.append({"line": "", "kind": "blank", "meaning": "dispatch the event built so far"})
        elif line.startswith(":"):
            out.append(
                {"line": line, "kind": "comment", "meaning": "ignored by clients: keep-alive"}
            )
        else:
            name, _, value = line.partition(":")
            meaning = SSE_FIELDS.get(name, "unknown field: ignored")
            # Exactly one space after the colon is dropped; any further spaces are data.
            value = value.removeprefix(" ")
            out.append({"line": line, "kind": name, "meaning": meaning, "value": value})
    if out and out[-1]["kind"] == "blank":
        out.pop()  # the split after the final "\n\n" adds one empty string too many
    return out


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
        request = get_request(wire.authority, f"{PATHS['sse']}?{urlencode(query)}", extra)
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
