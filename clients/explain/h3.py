"""``pushlab explain h3``: one WebTransport session over HTTP/3, at every level that is visible.

QUIC encrypts everything but a few header bits, so an observer on the wire sees only UDP
datagrams and their sizes: those are counted here at the client's socket. The rest is what our
own endpoint decrypts and aioquic reports (its qlog events): the QUIC packets and frames, the
HTTP/3 SETTINGS each side sent, the streams each side opened and their types, the extended
CONNECT (``:protocol: webtransport``) and its 200, then the server's unidirectional stream with
the feed on it (``--datagrams``: the events as HTTP/3 datagrams).

What to notice: no TCP and no TLS record layer (TLS 1.3 runs inside QUIC CRYPTO frames); the
client's first datagram is padded to 1,200 bytes (RFC 9000 §14.1, anti-amplification); both
sides open three unidirectional streams before any request (control, QPACK encoder, decoder);
the session is the CONNECT's stream id; the server's feed stream is a *server-initiated
unidirectional* stream (id % 4 == 3) whose first bytes (type 0x54, then the session id) tie it
to the session; after that it is the same NDJSON as the HTTP streaming transport. Capsules
(RFC 9297; CLOSE_WEBTRANSPORT_SESSION) are not shown: aioquic 1.7.2 parses none, and this
session ends with QUIC's CONNECTION_CLOSE.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from aioquic.h3.connection import Setting
from aioquic.h3.events import DatagramReceived, HeadersReceived, WebTransportStreamDataReceived
from aioquic.quic.logger import QuicLogger

from clients._h3 import connect
from feed.wire.contract import WEBTRANSPORT_INFO_PATH, WEBTRANSPORT_PATH

# Settings aioquic has no name for.
SETTING_NAMES = {0x21: "reserved (grease)", 0x14E9CD29: "WT_MAX_SESSIONS"}
STREAM_KINDS = {
    0: "client bidirectional",
    1: "server bidirectional",
    2: "client unidirectional",
    3: "server unidirectional",
}


def setting_name(key: int) -> str:
    try:
        return Setting(key).name
    except ValueError:
        return SETTING_NAMES.get(key, f"0x{key:x}")


def _settings(raw: dict[int, int] | None) -> list[list[Any]]:
    return [[f"0x{int(k):x}", setting_name(int(k)), v] for k, v in (raw or {}).items()]


def explain(
    url: str, topic: str, seconds: float = 2.0, max_events: int = 3, datagrams: bool = False
) -> dict[str, Any]:
    """Open one session against ``url``'s WebTransport server and record it."""
    r = httpx.get(f"{url}{WEBTRANSPORT_INFO_PATH}", trust_env=False, timeout=5)
    if r.status_code == 404:
        raise ConnectionError("the server runs without WebTransport (--webtransport-port 0)")
    r.raise_for_status()
    return asyncio.run(talk(r.json(), topic, seconds, max_events, datagrams))


async def talk(
    info: dict[str, Any], topic: str, seconds: float, max_events: int, datagrams: bool
) -> dict[str, Any]:
    target = urlsplit(info["url"])
    host, port = target.hostname or "127.0.0.1", int(target.port or 443)
    qlog = QuicLogger()
    conn = await connect(
        host, port, cert_sha256=bytes.fromhex(info["cert_sha256"]), record=True, quic_logger=qlog
    )
    query = {"topic": topic} | ({"datagrams": "1"} if datagrams else {})
    path = f"{WEBTRANSPORT_PATH}?{urlencode(query)}"
    report: dict[str, Any] = {"url": info["url"], "cert_sha256": info["cert_sha256"]}
    sid = conn.open_session(target.netloc, path, [])
    report["session_id"] = sid
    lines: list[dict[str, Any]] = []
    grams: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    try:
        while len(lines) + len(grams) < max_events + 1 and time.monotonic() < deadline:
            try:
                async with asyncio.timeout(deadline - time.monotonic()):
                    event = await conn.queue.get()
            except TimeoutError:
                break
            if event is None:
                break
            if isinstance(event, HeadersReceived) and event.stream_id == sid:
                report["response_headers"] = [[k.decode(), v.decode()] for k, v in event.headers]
            elif isinstance(event, WebTransportStreamDataReceived):
                for raw in event.data.splitlines():
                    lines.append({"stream_id": event.stream_id, "bytes": len(raw) + 1,
                                  "text": raw.decode(errors="replace")})  # fmt: skip
            elif isinstance(event, DatagramReceived):
                grams.append({"bytes": len(event.data), "text": event.data.decode()})
        report["server_settings"] = _settings(conn.h3.received_settings)
        report["client_settings"] = _settings(conn.h3.sent_settings)
    finally:
        conn.shutdown()
    report["lines"], report["datagrams"] = lines, grams
    report |= from_qlog(qlog.to_dict()["traces"][0]["events"])
    report["udp"] = {
        "sent": conn.sent,
        "received": conn.received,
        "bytes_sent": conn.bytes_sent,
        "bytes_received": conn.bytes_received,
        "payload_received": sum(x["bytes"] for x in lines + grams),
    }
    return report


def from_qlog(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Streams, the CONNECT's QPACK-encoded HEADERS and the QUIC packets, from aioquic's qlog."""
    streams, packets = [], []
    request: dict[str, Any] = {}
    for e in events:
        name, data = e["name"], e["data"]
        if name == "http:stream_type_set":
            sid = data["stream_id"]
            streams.append([sid, STREAM_KINDS[sid % 4], data["new"]])
        elif name == "http:frame_created" and data["frame"]["frame_type"] == "headers":
            request = {
                "stream_id": data["stream_id"],
                "qpack_bytes": data["length"],
                "headers": [[h["name"], h["value"]] for h in data["frame"]["headers"]],
            }
        elif name in ("transport:packet_sent", "transport:packet_received"):
            frames = sorted({f["frame_type"] for f in data["frames"]})
            packets.append(
                {
                    "dir": "C->S" if name.endswith("sent") else "S->C",
                    "type": data["header"]["packet_type"],
                    "bytes": data.get("raw", {}).get("length"),
                    "frames": frames,
                }
            )
    return {"streams": streams, "request": request, "packets": packets}


def render(report: dict[str, Any]) -> str:
    """Terminal text."""
    udp = report["udp"]
    out = [
        f"WebTransport over HTTP/3 at {report['url']}",
        f"certificate pinned by SHA-256 {report['cert_sha256'][:16]}... (serverCertificateHashes)",
        "--- on the wire (all an observer sees): UDP datagrams, sizes in bytes",
        f"  C->S {len(udp['sent'])}: {udp['sent']}",
        f"  S->C {len(udp['received'])}: {udp['received']}",
        "--- QUIC packets (decrypted by this endpoint; qlog)",
        *[
            f"  {p['dir']} {p['type']:<9} {p['bytes']} B  {', '.join(p['frames'])}"
            for p in report["packets"]
        ],  # fmt: skip
        "--- HTTP/3 SETTINGS",
        *[f"  server {k} {n} = {v}" for k, n, v in report.get("server_settings", [])],
        *[f"  client {k} {n} = {v}" for k, n, v in report.get("client_settings", [])],
        "--- streams (id, who opened it, type)",
        *[f"  {sid:>3}  {kind:<22} {typ}" for sid, kind, typ in report["streams"]],
    ]
    req = report["request"]
    out += [
        f"--- CONNECT on stream {req.get('stream_id')} ({req.get('qpack_bytes')} bytes of QPACK)",
        *[f"  {k}: {v}" for k, v in req.get("headers", [])],
        "--- response",
        *[f"  {k}: {v}" for k, v in report.get("response_headers", [])],
        "--- the feed",
        *[f"  stream {x['stream_id']} ({x['bytes']} B): {x['text']}" for x in report["lines"]],
        *[f"  datagram ({x['bytes']} B): {x['text']}" for x in report["datagrams"]],
        f"--- bytes: {udp['payload_received']} of feed in {udp['bytes_received']} received "
        f"over UDP ({len(udp['received'])} datagrams), {udp['bytes_sent']} sent",
    ]
    return "\n".join(out)
