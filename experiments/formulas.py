"""What each transport must put on the wire per delivered event, from the protocols' framing rules.

Pure functions; the runner puts their answer next to the bytes counted on the socket. Bytes are
TCP payload (HTTP headers, chunked framing and WebSocket frame headers included; TCP/IP headers
and ACKs excluded, as the kernel's ``bytes_sent``/``bytes_received`` counters count them).

- WebSocket (RFC 6455 5.2): a server frame is 2 header bytes for a payload <= 125, 4 up to
  65,535, else 10; client frames add a 4-byte mask. Events flow server -> client only, so the
  client -> server share per event is 0 (client pings every 20 s are ignored here).
- SSE: ``id: <seq>\\n`` + ``data: <json>\\n\\n`` per event, each sent as one HTTP/1.1 chunk
  (``<hex length>\\r\\n`` ... ``\\r\\n``). When the server is behind it writes several events as
  one chunk, so the measurement can only be lower than this.
- HTTP streaming (``/stream``): ``<json>\n`` per event, each one HTTP/1.1 chunk; batched like
  SSE when the server is behind, so again the measurement can only be lower.
- Polling: every request costs the request line + httpx's default headers, and every answer
  uvicorn's status line + headers + the batch envelope; the events' JSON comes on top. The
  number of requests and empty answers per event is measured, so the formula takes them as input.
"""

from __future__ import annotations

from dataclasses import dataclass

from feed.wire.http1 import request_head

# uvicorn's fixed response headers; the date is always 29 characters (RFC 7231 IMF-fixdate).
_DATE = "date: Wed, 25 Nov 2026 18:00:00 GMT\r\n"
_SERVER = "server: uvicorn\r\n"


@dataclass(frozen=True)
class Shape:
    """What the formula needs to know about a cell's traffic (means over delivered events)."""

    event_len: float  # JSON bytes of one event
    seq_len: float  # decimal digits of a seq
    events: int  # delivered events (all subscribers)
    requests: int = 0  # polling: HTTP requests made in the window
    empty: int = 0  # polling: answers without events
    topic: str = "ticks"
    port: int = 8000
    wait_s: float = 20.0


def ws_header(payload: int, *, masked: bool = False) -> int:
    """WebSocket frame header bytes for a payload of ``payload`` bytes."""
    base = 2 if payload <= 125 else 4 if payload <= 0xFFFF else 10
    return base + (4 if masked else 0)


def chunk_overhead(size: int) -> int:
    """HTTP/1.1 chunked framing around one chunk of ``size`` bytes."""
    return len(f"{size:x}") + 4


def sse_event_len(event_len: float, seq_len: float) -> float:
    """``id: <seq>\\n`` + ``data: <json>\\n\\n``."""
    return 4 + seq_len + 1 + 6 + event_len + 2


def httpx_request_len(path: str, query: str, port: int) -> int:
    """The request httpx sends: request line, Host, then the client's default headers."""
    import httpx  # local import: pure callers of this module should not pay for httpx

    with httpx.Client(trust_env=False) as client:
        defaults = dict(client.headers.items())
    return len(request_head("GET", f"{path}?{query}", f"127.0.0.1:{port}", defaults))


def poll_200_len(body_len: float) -> float:
    """uvicorn's JSON answer around a body of ``body_len`` bytes."""
    head = "HTTP/1.1 200 OK\r\n" + _DATE + _SERVER + "content-type: application/json\r\n\r\n"
    return len(head) + len(f"content-length: {int(body_len)}\r\n") + body_len


def batch_envelope_len(topic: str, cursor_len: float) -> float:
    """The batch JSON around the events (no gap): ``{"topic":..,"events":[..],...}``."""
    fixed = (
        f'{{"topic":"{topic}","events":[],"cursor":,"more":false,'
        '"last_seq":,"recovered":true,"gap":null}'
    )
    return len(fixed) + 2 * cursor_len


def long_poll_204_len(cursor_len: float) -> float:
    """The empty long-poll answer: 204 with the cursor header."""
    return (
        len("HTTP/1.1 204 No Content\r\n" + _DATE + _SERVER + "pushlab-cursor: \r\n\r\n")
        + cursor_len
    )


def per_event(transport: str, shape: Shape) -> tuple[float, float]:
    """``(client->server, server->client)`` bytes per delivered event by the formula."""
    j, s = shape.event_len, shape.seq_len
    if transport == "ws":
        return 0.0, j + ws_header(round(j))
    if transport == "sse":
        body = sse_event_len(j, s)
        return 0.0, body + chunk_overhead(round(body))
    if transport == "stream":
        line = j + 1
        return 0.0, line + chunk_overhead(round(line))
    if transport not in ("poll", "long-poll") or shape.events == 0:
        raise ValueError(f"no formula for {transport!r} with {shape.events} events")
    path = "/poll" if transport == "poll" else "/long-poll"
    query = f"topic={shape.topic}&since={'9' * round(s)}"
    if transport == "long-poll":
        query += f"&timeout={shape.wait_s}"
    up = shape.requests * httpx_request_len(path, query, shape.port)
    full = shape.requests - shape.empty
    env = batch_envelope_len(shape.topic, s)
    down = 0.0
    if full > 0:
        per_batch_events = shape.events / full
        body = env + per_batch_events * (j + 1) - 1
        down += full * poll_200_len(body)
    if shape.empty:
        down += shape.empty * (poll_200_len(env) if transport == "poll" else long_poll_204_len(s))
    return up / shape.events, down / shape.events
