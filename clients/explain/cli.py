"""``pushlab explain handshake|frames|sse|stream|poll|h2|h3 [--url URL] [--json]`` against a
server."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from clients.explain import handshake, poll, sse, stream, ws_frames

DEFAULT_URL = "http://127.0.0.1:8000"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Subcommands, each with ``--url`` and ``--json``."""
    sub = parser.add_subparsers(dest="what", required=True, metavar="WHAT")
    helps = {
        "handshake": "the raw upgrade request, the 101 answer, Sec-WebSocket-Accept by hand",
        "frames": "text/binary/ping/pong/close frames as bytes, decoded field by field",
        "sse": "raw text/event-stream bytes from /sse, every line annotated",
        "stream": "raw application/x-ndjson bytes from /stream, chunk by chunk, lines named",
        "poll": "a /poll and a /long-poll on one keep-alive connection, overhead vs payload",
        "h2": "a WebSocket over HTTP/2 (RFC 8441), to python -m servers.http2 (started if needed)",
        "h3": "a WebTransport session over HTTP/3: UDP sizes, QUIC packets, SETTINGS, streams",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--url", default=DEFAULT_URL, help=f"server (default {DEFAULT_URL})")
        p.add_argument("--json", action="store_true", help="print the report as JSON")
        p.add_argument(
            "--topic", default="ticks" if name in ("sse", "stream", "poll", "h3") else "explain"
        )
        if name in ("handshake", "frames"):
            p.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
        if name == "handshake":
            p.add_argument("--key", help="Sec-WebSocket-Key to send (default: 16 random bytes)")
        if name in ("sse", "stream"):
            p.add_argument("--since", type=int, default=0, help="cursor (default 0: history)")
            p.add_argument("--seconds", type=float, default=2.0, help="how long to read")
            p.add_argument("--max-bytes", type=int, default=4096, help="stop after this much")
        if name == "sse":
            p.add_argument("--last-event-id", type=int, help="send a Last-Event-ID header")
        if name == "stream":
            p.add_argument("--cursor", type=int, help="send a Pushlab-Cursor header")
        if name == "h2":
            p.add_argument("--h2-port", type=int, help="an h2c server already on 127.0.0.1")
        if name == "h3":
            p.add_argument("--seconds", type=float, default=2.0, help="how long to read")
            p.add_argument("--events", type=int, default=3, help="stop after this many")
            p.add_argument("--datagrams", action="store_true", help="events as datagrams")
        if name == "poll":
            p.add_argument("--since", type=int, help="cursor for /poll (default: from now)")
            p.add_argument("--timeout", type=float, default=1.0, help="long-poll wait, s")


def report_for(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """``(report, terminal text)`` for the chosen subcommand."""
    if args.what == "handshake":
        r = handshake.explain(args.url, args.topic, args.key, args.deflate)
        return r, handshake.render(r)
    if args.what == "frames":
        r = ws_frames.explain(args.url, args.topic, args.deflate)
        return r, ws_frames.render(r)
    if args.what == "sse":
        r = sse.explain(
            args.url, args.topic, args.since, args.seconds, args.max_bytes, args.last_event_id
        )
        return r, sse.render(r)
    if args.what == "stream":
        r = stream.explain(
            args.url, args.topic, args.since, args.seconds, args.max_bytes, args.cursor
        )
        return r, stream.render(r)
    if args.what == "h2":
        from clients.explain import h2ws  # hypercorn and h2 only when asked for

        r = h2ws.explain(topic=args.topic, port=args.h2_port)
        return r, h2ws.render(r)
    if args.what == "h3":
        from clients.explain import h3  # aioquic only when asked for

        r = h3.explain(args.url, args.topic, args.seconds, args.events, args.datagrams)
        return r, h3.render(r)
    r = poll.explain(args.url, args.topic, args.since, args.timeout)
    return r, poll.render(r)


def run(args: argparse.Namespace) -> int:
    """Print the report; exit 1 when the server cannot be reached or refuses."""
    try:
        report, text = report_for(args)
    except (OSError, ConnectionError, ValueError) as exc:
        print(
            f"explain {args.what}: {exc} (is `pushlab serve` running at {args.url}?)",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(report, indent=2) if args.json else text)
    return 0
