"""``pushlab explain handshake``: a real upgrade on a raw socket, and the accept key by hand."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from clients.explain.wire import Wire
from feed.wire.contract import PATHS
from feed.wire.ws import (
    RFC6455_SAMPLE_ACCEPT,
    RFC6455_SAMPLE_KEY,
    accept_steps,
    new_ws_key,
    upgrade_request,
)


def ws_target(topic: str, since: int | None = None) -> str:
    query = {"topic": topic} | ({} if since is None else {"since": str(since)})
    return f"{PATHS['ws']}?{urlencode(query)}"


def open_ws(
    url: str,
    target: str,
    *,
    key: str | None = None,
    extra: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[Wire, dict[str, Any]]:
    """Connect, send the upgrade, read the answer head; the wire stays open for frames."""
    key = key or new_ws_key()
    wire = Wire(url, timeout)
    request = upgrade_request(wire.authority, target, key, extra)
    wire.send(request)
    head = wire.read_head()
    steps = accept_steps(key)
    sent = head.headers.get("sec-websocket-accept")
    report: dict[str, Any] = {
        "request": request.decode(),
        "response": head.raw.decode("latin-1"),
        "status": head.status,
        "response_headers": head.headers,
        "accept_steps": steps,
        "server_accept": sent,
        "accept_ok": sent == steps["accept"],
        "extensions": head.headers.get("sec-websocket-extensions"),
        "subprotocol": head.headers.get("sec-websocket-protocol"),
        "request_bytes": len(request),
        "response_bytes": len(head.raw),
    }
    return wire, report


def explain(
    url: str, topic: str = "explain", key: str | None = None, deflate: bool = False
) -> dict[str, Any]:
    """The handshake report, plus the RFC 6455 worked example checked by the same code."""
    extra = {"Sec-WebSocket-Extensions": "permessage-deflate"} if deflate else None
    wire, report = open_ws(url, ws_target(topic), key=key, extra=extra)
    wire.close()
    sample = accept_steps(RFC6455_SAMPLE_KEY)
    report["rfc6455_sample"] = sample | {"ok": sample["accept"] == RFC6455_SAMPLE_ACCEPT}
    return report


def render(report: dict[str, Any]) -> str:
    """Terminal text."""
    steps = report["accept_steps"]
    sample = report["rfc6455_sample"]
    verdict = "MATCHES" if report["accept_ok"] else "DOES NOT MATCH"
    lines = [
        f"--- request ({report['request_bytes']} bytes), client -> server",
        report["request"].rstrip("\r\n").replace("\r\n", "\n"),
        "",
        f"--- response ({report['response_bytes']} bytes), server -> client",
        report["response"].rstrip("\r\n").replace("\r\n", "\n"),
        "",
        "--- Sec-WebSocket-Accept, step by step (RFC 6455 §4.2.2)",
        f"1. key from the request         {steps['key']}",
        f"2. append the GUID              {steps['concat']}",
        f"3. SHA-1 of that, hex           {steps['sha1_hex']}",
        f"4. base64 of the 20 raw bytes   {steps['accept']}",
        f"5. server sent                  {report['server_accept']}  -> {verdict}",
        "",
        f"RFC 6455 sample: {sample['key']} -> {sample['accept']} "
        f"({'ok' if sample['ok'] else 'WRONG'}: the RFC says s3pPLMBiTxaQ9kYGzzhZRbK+xOo=)",
        f"extensions negotiated: {report['extensions'] or 'none'}",
    ]
    return "\n".join(lines)
