"""What an attacker sees on the wire: answers read from raw sockets, for ``experiments.abuse``.

Connections are :class:`clients.explain.wire.Wire` (a loopback socket that counts bytes), request
heads and frames from the core's codecs (:mod:`feed.wire.http1`, :mod:`feed.wire.ws`). This
module only adds the observing: read until a response head, the server's close, a reset or a
deadline, and say which, after how long. Nothing here judges an answer.
"""

from __future__ import annotations

import contextlib
import json
import re
import selectors
import threading
import time
from typing import Any

import psutil

from clients.explain.wire import Wire
from experiments.children import rss_bytes
from experiments.sockstats import ss
from feed.wire.http1 import Head, request_head, split_head
from feed.wire.ws import CLOSE, FrameReader

# Response headers worth keeping in a record (the rest are the same on every answer).
KEY_HEADERS = ("sec-websocket-version", "www-authenticate", "retry-after", "connection")
MAX_BODY_KEPT = 4096


def http_request(
    method: str,
    host: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    length: int | None = None,
) -> bytes:
    """A request head (+ body); ``length`` declares a Content-Length larger than ``body``."""
    fields = dict(headers or {})
    if method in ("POST", "PUT") or body:
        fields["Content-Length"] = str(len(body) if length is None else length)
    return request_head(method, target, host, fields) + body


def await_head(wire: Wire, seconds: float) -> dict[str, Any]:
    """Read until a response head, EOF, a reset or ``seconds``: ``{"kind", "after_s", ...}``.

    ``kind`` is ``status`` (with ``head``), ``closed`` (EOF from the server), ``reset`` or
    ``silent`` (nothing complete within ``seconds``).
    """
    t0 = time.monotonic()
    deadline = t0 + seconds
    while True:
        got = split_head(wire.buf)
        if got is not None:
            head, wire.buf = got
            return {"kind": "status", "head": head, "after_s": _since(t0)}
        left = deadline - time.monotonic()
        if left <= 0:
            return {"kind": "silent", "after_s": round(seconds, 3)}
        wire.sock.settimeout(left)
        try:
            chunk = wire.sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return {"kind": "reset", "after_s": _since(t0)}
        if not chunk:
            return {"kind": "closed", "after_s": _since(t0), "partial": len(wire.buf)}
        wire.received += len(chunk)
        wire.buf += chunk


def describe(seen: dict[str, Any], wire: Wire | None = None) -> dict[str, Any]:
    """A JSON-able record of :func:`await_head`'s result; reads a small body when there is one."""
    out = {k: v for k, v in seen.items() if k != "head"}
    head: Head | None = seen.get("head")
    if head is None:
        out["answer"] = {
            "silent": f"no answer within {seen['after_s']:g} s",
            "closed": f"closed by server after {seen['after_s']:g} s, no answer",
            "reset": f"reset by server after {seen['after_s']:g} s",
        }[seen["kind"]]
        return out
    out["status"] = head.status
    out["headers"] = {k: head.headers[k] for k in KEY_HEADERS if k in head.headers}
    error = _error_code(head, wire) if wire is not None and head.status != 101 else None
    if error:
        out["error"] = error
    out["answer"] = f"{head.status}" + (f" {error}" if error else "")
    return out


def _error_code(head: Head, wire: Wire) -> str | None:
    """The ``error`` field of a small JSON body, if the answer has one."""
    size = head.headers.get("content-length", "")
    if not size.isdigit() or int(size) > MAX_BODY_KEPT:
        return None
    try:
        _raw, payload = wire.read_body(head)
        body = json.loads(payload)
    except (OSError, ValueError):
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    detail = body.get("detail") if isinstance(body, dict) else None
    return "validation" if isinstance(detail, list) else None


def ask(url: str, request: bytes, seconds: float = 5.0) -> dict[str, Any]:
    """Send ``request`` on a new connection and describe the answer (connection closed after)."""
    with Wire(url, seconds) as wire:
        wire.send(request)
        return describe(await_head(wire, seconds), wire)


def frames_until_close(wire: Wire, seconds: float, limit: int = 64 << 20) -> dict[str, Any]:
    """Read server frames for ``seconds`` (at most ``limit`` bytes): kinds, count, close code."""
    reader = FrameReader()
    deadline = time.monotonic() + seconds
    kinds: dict[str, int] = {}
    first_text: str | None = None
    read = 0
    reader.feed(wire.buf)
    wire.buf = b""
    while True:
        for frame in reader.frames():
            kinds[frame.kind] = kinds.get(frame.kind, 0) + 1
            if frame.kind == "text" and first_text is None:
                first_text = frame.payload[:200].decode("utf-8", "replace")
            if frame.opcode == CLOSE:
                return _frames_out(kinds, first_text, "close", frame.close_code, frame.close_reason)
        left = deadline - time.monotonic()
        if left <= 0 or read > limit:
            return _frames_out(kinds, first_text, "open")
        wire.sock.settimeout(left)
        try:
            chunk = wire.sock.recv(1 << 20)
        except TimeoutError:
            continue
        except OSError:
            return _frames_out(kinds, first_text, "reset")
        if not chunk:
            return _frames_out(kinds, first_text, "eof")
        read += len(chunk)
        reader.feed(chunk)


def _frames_out(
    kinds: dict[str, int],
    first: str | None,
    end: str,
    code: int | None = None,
    why: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"frames": kinds, "end": end, "first_text": first}
    if end == "close":
        out |= {"close_code": code, "close_reason": why}
    return out


def first_type(text: str | None) -> str | None:
    """The ``type`` of a JSON text frame, or None."""
    if text is None:
        return None
    with contextlib.suppress(ValueError):
        obj = json.loads(text)
        if isinstance(obj, dict) and isinstance(obj.get("type"), str):
            return str(obj["type"])
    return None


def hold(
    url: str, n: int, first: bytes, drip: bytes | None, seconds: float, drip_every_s: float = 1.0
) -> dict[str, Any]:
    """Open ``n`` connections, send ``first`` on each, then ``drip`` every second; watch them.

    Returns counts of what happened within ``seconds``: still open, answered (by status), closed
    by the server, reset; and when the first and last of them ended.
    """
    wires: list[Wire] = []
    ended: dict[int, tuple[str, float]] = {}
    sel = selectors.DefaultSelector()
    t0 = time.monotonic()
    try:
        for i in range(n):
            w = Wire(url, 5.0)
            wires.append(w)
            w.send(first)
            w.sock.setblocking(False)
            sel.register(w.sock, selectors.EVENT_READ, i)
        deadline = t0 + seconds
        next_drip = t0 + drip_every_s
        while len(ended) < n and (now := time.monotonic()) < deadline:
            wake = min(deadline, next_drip) if drip else deadline
            for key, _ in sel.select(max(0.0, wake - now)):
                i = key.data
                outcome = _read_one(wires[i])
                if outcome is not None:
                    ended[i] = (outcome, _since(t0))
                    sel.unregister(wires[i].sock)
            if drip and time.monotonic() >= next_drip:
                next_drip += drip_every_s
                for i, w in enumerate(wires):
                    if i not in ended:
                        try:
                            w.sock.send(drip)
                        except BlockingIOError:
                            pass  # the server stopped reading: the connection is still held
                        except OSError:
                            ended[i] = ("reset", _since(t0))
                            sel.unregister(w.sock)
    finally:
        sel.close()
        for w in wires:
            w.close()
    return _hold_summary(n, ended, seconds)


def _read_one(wire: Wire) -> str | None:
    """``"<status>"``, ``"closed"`` or ``"reset"`` once a held connection has an outcome."""
    try:
        chunk = wire.sock.recv(65536)
    except BlockingIOError:
        return None
    except OSError:
        return "reset"
    if not chunk:
        return "closed"
    wire.buf += chunk
    got = split_head(wire.buf)
    if got is None and len(wire.buf) < 12:
        return None
    status = wire.buf[9:12].decode("latin-1")
    return status if status.isdigit() else "garbage"


def _hold_summary(n: int, ended: dict[int, tuple[str, float]], seconds: float) -> dict[str, Any]:
    outcomes: dict[str, int] = {}
    for outcome, _ in ended.values():
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    times = sorted(t for _, t in ended.values())
    still = n - len(ended)
    parts = [f"{still}/{n} still open at {seconds:g} s"] if still else []
    for outcome, count in sorted(outcomes.items()):
        what = f"{count} x {outcome}" if outcome.isdigit() else f"{count} {outcome} by server"
        parts.append(what)
    if times:
        parts.append(f"after {times[0]:.1f}-{times[-1]:.1f} s")
    return {
        "connections": n,
        "still_open": still,
        "outcomes": outcomes,
        "first_end_s": times[0] if times else None,
        "last_end_s": times[-1] if times else None,
        "answer": ", ".join(parts),
    }


def stream_body(
    wire: Wire, head: bytes, total: int, stall_s: float = 5.0, chunk: int = 1 << 16
) -> dict[str, Any]:
    """Send ``head`` then up to ``total`` filler bytes; stop as soon as the server answers,
    closes or stops reading for ``stall_s``. ``sent`` is how many filler bytes it took."""
    wire.send(head)
    filler = b"a" * chunk
    sent = 0
    t0 = time.monotonic()
    sock = wire.sock
    sock.setblocking(False)
    stop = "sent_all"
    try:
        while sent < total:
            with selectors.DefaultSelector() as sel:
                sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
                events = sel.select(stall_s)
            if not events:
                stop = "server_stopped_reading"
                break
            mask = events[0][1]
            if mask & selectors.EVENT_READ:
                stop = "server_spoke"
                break
            try:
                sent += sock.send(filler[: min(chunk, total - sent)])
            except BlockingIOError:
                continue
            except OSError:
                stop = "send_failed"
                break
    finally:
        sock.setblocking(True)
    return {"sent": sent, "stop": stop, "send_s": _since(t0)}


def server_socket(server_port: int, client_port: int) -> dict[str, Any] | None:
    """The server side of one loopback connection in the kernel's table: state and queues."""
    out = ss("state", "all", f"( sport = :{server_port} and dport = :{client_port} )").split()
    if len(out) < 3:
        return None
    state, recv_q, send_q = out[0], out[1], out[2]
    return {"state": state, "recv_q": int(recv_q), "send_q": int(send_q)}


class RssPeak:
    """Samples a process's RSS in a thread: ``before``, ``peak`` and ``after`` in MB."""

    def __init__(self, pid: int, every_s: float = 0.05) -> None:
        self.pid = pid
        self.every_s = every_s
        self.before = self.peak = self._sample()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        try:
            return rss_bytes(self.pid)
        except psutil.Error:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, self._sample())

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self) -> dict[str, float]:
        after = self._sample()
        self.peak = max(self.peak, after)
        mb = 1 << 20
        return {
            "rss_before_mb": round(self.before / mb, 1),
            "rss_peak_growth_mb": round((self.peak - self.before) / mb, 1),
            "rss_after_growth_mb": round((after - self.before) / mb, 1),
        }


LOG_LEVEL = re.compile(r'"level":\s*"(error|critical)"|^(ERROR|CRITICAL)\b', re.MULTILINE)


def log_counts(text: str) -> dict[str, int]:
    """Tracebacks and error-level lines in a server log (JSON lines or plain)."""
    return {"tracebacks": text.count("Traceback"), "error_lines": len(LOG_LEVEL.findall(text))}


def _since(t0: float) -> float:
    return round(time.monotonic() - t0, 3)
