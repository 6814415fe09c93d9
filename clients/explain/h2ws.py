"""``pushlab explain h2``: a WebSocket over HTTP/2 (RFC 8441), on the lab's own app.

uvicorn speaks HTTP/1.1 only, so this talks h2c (HTTP/2 without TLS, prior knowledge) with the
``h2`` library on a raw socket to the same app under hypercorn (which implements RFC 8441):
``python -m servers.http2``, started here as a child process unless a port is given.

What to notice: the server announces ``SETTINGS_ENABLE_CONNECT_PROTOCOL = 1``; the client opens
a *stream* with an extended CONNECT (``:protocol: websocket``); the answer is ``:status 200``,
with no Sec-WebSocket-Key/Accept and no 101; WebSocket frames (still masked client to server)
then ride in HTTP/2 DATA frames, and other streams could share the same TCP connection.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from typing import Any

from clients.h2ws import NO_EXTENDED_CONNECT, H2WebSocket, H2WebSocketError
from feed.exceptions import FatalTransportError
from feed.wire.ws import TEXT, decode_frame

__all__ = ["NO_EXTENDED_CONNECT", "explain", "render", "talk"]


def explain(topic: str = "h2", port: int | None = None) -> dict[str, Any]:
    """Open a WebSocket over HTTP/2, ping it at application level, and record what happened.

    ``port``: an h2c server already running on 127.0.0.1; none: start ``python -m servers.http2``
    for the duration (it reads ``PUSHLAB_*`` from this environment, ticker off)."""
    if port is not None:
        return talk(port, topic)
    child = subprocess.Popen(
        [sys.executable, "-m", "servers.http2", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # "listening on 127.0.0.1:PORT", or EOF if it failed
        if not line.startswith("listening on "):
            raise ConnectionError(f"python -m servers.http2 did not start (exit {child.poll()})")
        return talk(int(line.rsplit(":", 1)[1]), topic)
    finally:
        child.terminate()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()


def talk(
    port: int, topic: str, *, tls: ssl.SSLContext | None = None, insist: bool = False
) -> dict[str, Any]:
    """Speak HTTP/2 to 127.0.0.1:port and open ``/ws`` with an extended CONNECT (the lab client's
    sans-I/O :class:`~clients.h2ws.H2WebSocket` on a blocking socket).

    ``tls``: over TLS with ALPN ``h2`` (as a browser does), else h2c by prior knowledge.
    ``insist``: send the extended CONNECT even when the server did not announce it, to record
    the server's answer (a client that follows RFC 8441 never does this)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    report: dict[str, Any] = {"port": port, "frames": [], "sent": []}
    if tls is not None:
        tls.set_alpn_protocols(["h2"])
        sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
        report["alpn"] = sock.selected_alpn_protocol()
    scheme = "https" if tls is not None else "http"
    ws = H2WebSocket(f"127.0.0.1:{port}", f"/ws?topic={topic}", scheme=scheme, insist=insist)
    sock.sendall(ws.data_to_send())
    deadline = time.monotonic() + 10
    try:
        while len(report["frames"]) < 2 and time.monotonic() < deadline and not ws.ended:
            data = sock.recv(65536)
            if not data:
                break
            asked = ws.stream_id is not None
            try:
                frames = ws.receive_data(data)
            except (H2WebSocketError, FatalTransportError) as exc:
                _settings(report, ws)
                report["error"] = str(exc)
                if ws.response_headers:
                    report["response_headers"] = [list(h) for h in ws.response_headers]
                return _finish(report)
            _settings(report, ws)
            if insist and ws.enable_connect_protocol != 1:
                report.setdefault("error", NO_EXTENDED_CONNECT)
            if not asked and ws.stream_id is not None:
                report["request_headers"] = [list(h) for h in ws.request_headers]
                report["stream_id"] = ws.stream_id
            if ws.status is not None and "response_headers" not in report:
                report["response_headers"] = [list(h) for h in ws.response_headers]
                sock.sendall(ws.data_to_send())  # what is queued (acks): the ping goes alone
                ws.send(TEXT, b'{"type":"ping","id":7}')
                out = ws.data_to_send()
                # One DATA frame: a 9-byte HTTP/2 frame header, the WebSocket frame its payload.
                decoded = decode_frame(out, 9)
                assert decoded is not None
                report["sent"].append(decoded[0].fields())
                sock.sendall(out)
            report["frames"] += [f.fields() for f in frames]
            if out := ws.data_to_send():
                sock.sendall(out)
    finally:
        sock.close()
    return _finish(report)


def _settings(report: dict[str, Any], ws: H2WebSocket) -> None:
    report["enable_connect_protocol"] = ws.enable_connect_protocol
    report["server_settings"] = ws.server_settings


def _finish(report: dict[str, Any]) -> dict[str, Any]:
    status = dict(report.get("response_headers", [])).get(":status")
    report["status"] = int(status) if status else None
    return report


def render(report: dict[str, Any]) -> str:
    """Terminal text."""
    lines = [
        f"hypercorn (HTTP/2, h2c) on 127.0.0.1:{report['port']}",
        f"server SETTINGS_ENABLE_CONNECT_PROTOCOL = {report.get('enable_connect_protocol')}",
    ]
    if report.get("error"):
        return "\n".join([*lines, report["error"]])
    lines += [
        f"--- HEADERS on stream {report.get('stream_id')} (client -> server)",
        *[f"  {k}: {v}" for k, v in report.get("request_headers", [])],
        "--- HEADERS (server -> client): no 101, no Sec-WebSocket-Accept",
        *[f"  {k}: {v}" for k, v in report.get("response_headers", [])],
        "--- WebSocket frames inside HTTP/2 DATA frames",
    ]
    for arrow, frames in (("C->S", report["sent"]), ("S->C", report["frames"])):
        for f in frames:
            lines.append(
                f"  {arrow} {f['kind']} FIN={int(f['fin'])} MASK={int(f['masked'])} "
                f"len={f['payload_length']}: {f.get('text', '')}"
            )
    return "\n".join(lines)
