"""``pushlab explain h2``: a WebSocket over HTTP/2 (RFC 8441), on the lab's own app.

uvicorn speaks HTTP/1.1 only, so this talks h2c (HTTP/2 without TLS, prior knowledge) with the
``h2`` library on a raw socket to the same app under hypercorn (which implements RFC 8441):
``python -m servers.h2c``, started here as a child process unless a port is given.

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

import h2.config
import h2.connection
import h2.events
import h2.settings

from feed.wire.ws import TEXT, FrameReader, decode_frame, encode_frame, new_mask_key

NO_EXTENDED_CONNECT = (
    "the server did not announce SETTINGS_ENABLE_CONNECT_PROTOCOL = 1: no WebSocket over this "
    "HTTP/2 connection (RFC 8441 §3); a browser would open an HTTP/1.1 connection instead"
)


def _headers(pairs: Any) -> list[list[str]]:
    return [[k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v]
            for k, v in pairs]  # fmt: skip


def explain(topic: str = "h2", port: int | None = None) -> dict[str, Any]:
    """Open a WebSocket over HTTP/2, ping it at application level, and record what happened.

    ``port``: an h2c server already running on 127.0.0.1; none: start ``python -m servers.h2c``
    for the duration (it reads ``PUSHLAB_*`` from this environment, ticker off)."""
    if port is not None:
        return talk(port, topic)
    child = subprocess.Popen(
        [sys.executable, "-m", "servers.h2c", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # "listening on 127.0.0.1:PORT", or EOF if it failed
        if not line.startswith("listening on "):
            raise ConnectionError(f"python -m servers.h2c did not start (exit {child.poll()})")
        return talk(int(line.rsplit(":", 1)[1]), topic)
    finally:
        child.terminate()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()


def talk(
    port: int, topic: str, *, tls: ssl.SSLContext | None = None, insist: bool = False
) -> dict[str, Any]:
    """Speak HTTP/2 to 127.0.0.1:port and open ``/ws`` with an extended CONNECT.

    ``tls``: over TLS with ALPN ``h2`` (as a browser does), else h2c with prior knowledge.
    ``insist``: send the extended CONNECT even when the server did not announce it, to record
    the server's answer (a client that follows RFC 8441 never does this)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    report: dict[str, Any] = {"port": port, "frames": [], "sent": []}
    if tls is not None:
        tls.set_alpn_protocols(["h2"])
        sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
        report["alpn"] = sock.selected_alpn_protocol()
    config = h2.config.H2Configuration(client_side=True, validate_outbound_headers=not insist)
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    reader = FrameReader()
    stream_id: int | None = None
    deadline = time.monotonic() + 10
    try:
        while len(report["frames"]) < 2 and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RemoteSettingsChanged) and stream_id is None:
                    code = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL
                    # The server's own SETTINGS frame (h2 fills in defaults for the rest).
                    report["server_settings"] = sorted(int(s) for s in event.changed_settings)
                    report["enable_connect_protocol"] = conn.remote_settings.get(code)
                    if report["enable_connect_protocol"] != 1:
                        # RFC 8441 §3: a client MUST NOT send :protocol to a server that has
                        # not announced SETTINGS_ENABLE_CONNECT_PROTOCOL = 1.
                        report["error"] = NO_EXTENDED_CONNECT
                        if not insist:
                            return _finish(report)
                    stream_id = conn.get_next_available_stream_id()
                    request = [
                        (":method", "CONNECT"),
                        (":protocol", "websocket"),
                        (":scheme", "https" if tls else "http"),
                        (":path", f"/ws?topic={topic}"),
                        (":authority", f"127.0.0.1:{port}"),
                        ("sec-websocket-version", "13"),
                    ]
                    conn.send_headers(stream_id, request)
                    report["request_headers"] = _headers(request)
                    report["stream_id"] = stream_id
                elif isinstance(event, h2.events.ResponseReceived) and stream_id is not None:
                    report["response_headers"] = _headers(event.headers)
                    if dict(report["response_headers"]).get(":status") != "200":
                        return _finish(report)  # refused: no WebSocket on this stream
                    frame = encode_frame(TEXT, b'{"type":"ping","id":7}', mask_key=new_mask_key())
                    conn.send_data(stream_id, frame)
                    decoded = decode_frame(frame)
                    assert decoded is not None
                    report["sent"].append(decoded[0].fields())
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    reader.feed(event.data)
                    report["frames"] += [f.fields() for f in reader.frames()]
            if out := conn.data_to_send():
                sock.sendall(out)
    finally:
        sock.close()
    return _finish(report)


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
