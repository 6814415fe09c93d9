"""Adversarial probes (issue 16): each attack sent on raw sockets to pushlab and the Node baseline.

``python -m experiments.abuse [--form short|long] [--only NAME,...]`` starts a fresh server per
probe and target (so memory, logs and topics belong to that probe alone), sends the attack and
records what came back: an HTTP status with its key headers, a WebSocket close code, "no answer
within T", "closed by server after T s", the server socket's state in the kernel, RSS growth, and
the tracebacks and error lines in the server's log. It measures and records; it asserts nothing.
Output: ``results/<UTC>_abuse/{summary.json, meta.json, report.md}`` (server logs in ``raw/``).

pushlab runs with ``--auth --origins https://app.example`` and short deadlines (:data:`PUSHLAB_ENV`,
extended with ``--pushlab-env KEY=VALUE``); the baseline with a 100-event subscriber buffer like
pushlab's. A probe of a route the baseline does not serve is recorded "n/a" with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from clients.explain.wire import Wire
from experiments import baseline
from experiments.abuse_wire import (
    RssPeak,
    ask,
    await_head,
    describe,
    first_type,
    frames_until_close,
    hold,
    http_request,
    log_counts,
    server_socket,
    stream_body,
)
from experiments.children import python_server_args
from experiments.records import AbuseCell
from experiments.results import ResultsDir, load_as
from feed.wire.http1 import get_request
from feed.wire.ws import PING, TEXT, encode_frame, new_mask_key, new_ws_key, upgrade_request
from servers.launch import ServerProcess

ORIGIN = "https://app.example"
EVIL = "https://evil.example"
TICKER_TOPIC = "ticks"
SUBSCRIBER_BUFFER = 100
MAX_TOPICS = 50
# Settings of the pushlab server under attack: auth and an allowlist on (the attacks of item 1
# need them), deadlines short so a run takes minutes, the topic cap low so it can be reached.
PUSHLAB_FLAGS = ["--auth", "--origins", ORIGIN]
PUSHLAB_ENV = {
    "PUSHLAB_SEND_TIMEOUT_S": "2",
    "PUSHLAB_SUBSCRIBER_BUFFER": str(SUBSCRIBER_BUFFER),
    "PUSHLAB_MAX_TOPICS": str(MAX_TOPICS),
}
NODE_FLAGS = ["--subscriber-buffer", str(SUBSCRIBER_BUFFER)]
PAD_60KB = "x" * 60_000


@dataclass(frozen=True)
class Form:
    """How hard each probe pushes and how long it watches (short: ``make test``, long: abuse)."""

    name: str
    hold_s: float  # trickled / silent connections are watched this long
    trickle: int
    silent: int
    release_s: float  # a slow consumer's server socket is watched this long after the drop
    slow_events: int  # at most this many 60 KB publishes to overflow a slow consumer
    pings: int
    flood: int  # 60 KB publishes kept in one topic's history
    unterminated: int  # bytes of one header value that never ends
    echo_bytes: int
    token_bytes: int


SHORT = Form("short", 3, 10, 10, 10, 200, 2_000, 50, 4 << 20, 8 << 20, 4 << 20)
LONG = Form("long", 95, 500, 100, 70, 1_500, 20_000, 1_000, 32 << 20, 64 << 20, 32 << 20)
FORMS = {f.name: f for f in (SHORT, LONG)}


@dataclass
class Target:
    """A running server under attack."""

    kind: str  # "pushlab" | "node"
    url: str
    port: int
    pid: int
    token: str | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def auth(self, **extra: str) -> dict[str, str]:
        """The headers of an authorised client (Node ignores the token)."""
        bearer = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return bearer | extra


@dataclass(frozen=True)
class Probe:
    """One attack: what is sent, the answer pushlab documents, and the code that sends it."""

    name: str
    item: int  # the item of issue 16 it belongs to
    attack: str
    expected: str
    send: Callable[[Target, Form], dict[str, Any]]
    node: str | None = None  # why it does not apply to the Node baseline (None: it does)
    rss: bool = False  # the answer is about memory: the table always shows RSS growth


# --- sending -------------------------------------------------------------------------------


def _post(t: Target, target: str, headers: dict[str, str], body: bytes = b"") -> dict[str, Any]:
    return ask(t.url, http_request("POST", t.host, target, headers, body))


def _get(t: Target, target: str, headers: dict[str, str]) -> dict[str, Any]:
    return ask(t.url, get_request(t.host, target, headers))


def _upgrade(
    t: Target, target: str, headers: dict[str, str], frames_s: float = 1.0
) -> dict[str, Any]:
    """An upgrade; after a 101, the first frames the server sends within ``frames_s``."""
    with Wire(t.url, 5.0) as wire:
        wire.send(upgrade_request(t.host, target, new_ws_key(), headers))
        out = describe(await_head(wire, 5.0), wire)
        if out.get("status") == 101:
            frames = frames_until_close(wire, frames_s)
            out |= frames
            kind = first_type(frames["first_text"])
            out["answer"] += f", first frame {kind}" if kind else ", no frame"
            if frames["end"] == "close":
                out["answer"] += f", close {frames['close_code']}"
        return out


def _open_ws(t: Target, target: str) -> tuple[Wire, dict[str, Any]]:
    wire = Wire(t.url, 5.0)
    wire.send(upgrade_request(t.host, target, new_ws_key(), t.auth()))
    return wire, describe(await_head(wire, 5.0), wire)


def publish_no_token(t: Target, f: Form) -> dict[str, Any]:
    return _post(t, "/publish?topic=abuse", {"Content-Type": "application/json"}, b'{"x":1}')


def admin_ticker_no_token(t: Target, f: Form) -> dict[str, Any]:
    return _post(t, "/admin/ticker?rate=10", {})


def admin_kick_no_token(t: Target, f: Form) -> dict[str, Any]:
    return _post(t, "/admin/kick", {})


def chat_no_token(t: Target, f: Form) -> dict[str, Any]:
    return _upgrade(t, "/chat?user=bob", {})


def publish_bad_origin(t: Target, f: Form) -> dict[str, Any]:
    headers = t.auth(Origin=EVIL, **{"Content-Type": "application/json"})
    return _post(t, "/publish?topic=abuse", headers, b'{"x":1}')


def _bad_origin_upgrade(path: str) -> Callable[[Target, Form], dict[str, Any]]:
    def send(t: Target, f: Form) -> dict[str, Any]:
        return _upgrade(t, path, t.auth(Origin=EVIL))

    return send


def trickled_headers(t: Target, f: Form) -> dict[str, Any]:
    # Hand-written on purpose: a head that never ends, which no builder produces.
    first = f"GET /healthz HTTP/1.1\r\nHost: {t.host}\r\nX-Slow: ".encode()
    return hold(t.url, f.trickle, first, b"a", f.hold_s)


def silent_connections(t: Target, f: Form) -> dict[str, Any]:
    return hold(t.url, f.silent, b"", None, f.hold_s)


def header_100kb(t: Target, f: Form) -> dict[str, Any]:
    return _get(t, "/healthz", {"X-Pad": "a" * 100_000})


def headers_1100(t: Target, f: Form) -> dict[str, Any]:
    return _get(t, "/healthz", {f"X-H-{i}": "v" for i in range(1_100)})


def _streamed(t: Target, head: bytes, total: int) -> dict[str, Any]:
    """Send ``head`` and up to ``total`` more bytes; the answer, and how much it took."""
    with Wire(t.url, 5.0) as wire:
        sending = stream_body(wire, head, total)
        out = describe(await_head(wire, 10.0), wire) | sending
        mb = sending["sent"] / (1 << 20)
        out["answer"] += f" ({mb:.1f} of {total / (1 << 20):.0f} MB sent, {sending['stop']})"
        return out


def unterminated_header(t: Target, f: Form) -> dict[str, Any]:
    # Hand-written on purpose: a head that never ends, which no builder produces.
    head = f"GET /healthz HTTP/1.1\r\nHost: {t.host}\r\nX-Big: ".encode()
    return _streamed(t, head, f.unterminated)


def ws_long_url(t: Target, f: Form) -> dict[str, Any]:
    return _upgrade(t, f"/ws?topic=abuse&pad={'a' * 10_000}", t.auth())


def ws_long_header(t: Target, f: Form) -> dict[str, Any]:
    return _upgrade(t, "/ws?topic=abuse", t.auth(**{"X-Pad": "a" * 9_000}))


def ws_many_headers(t: Target, f: Form) -> dict[str, Any]:
    return _upgrade(t, "/ws?topic=abuse", t.auth(**{f"X-H-{i}": "v" for i in range(200)}))


def ws_version_12(t: Target, f: Form) -> dict[str, Any]:
    out = _upgrade(t, "/ws?topic=abuse", t.auth(**{"Sec-WebSocket-Version": "12"}))
    version = out.get("headers", {}).get("sec-websocket-version")
    out["answer"] += f", Sec-WebSocket-Version: {version}" if version else ", no version header"
    return out


def _slow(t: Target, f: Form, transport: str) -> dict[str, Any]:
    """A subscriber that stops reading while 60 KB events are published: is it dropped, and is
    the server's socket released (kernel state), and what did it get told?"""
    topic = f"slow-{transport}"
    # A publisher creates the topic first: where subscribers may not create topics (issue 16,
    # item 4) the subscription is still admitted and the probe measures the slow consumer.
    with httpx.Client(trust_env=False, timeout=10.0) as http:
        http.post(f"{t.url}/publish", params={"topic": topic}, headers=t.auth(), json={})
    wire = Wire(t.url, 5.0)
    try:
        if transport == "ws":
            wire.send(upgrade_request(t.host, f"/ws?topic={topic}", new_ws_key(), t.auth()))
        else:
            headers = t.auth(Accept="text/event-stream")
            wire.send(get_request(t.host, f"/sse?topic={topic}", headers))
        opened = describe(await_head(wire, 5.0))
        if opened.get("status") not in (101, 200):
            return opened | {"answer": f"could not subscribe: {opened['answer']}"}
        t0 = time.monotonic()
        published = refused = 0
        left_estab: float | None = None
        with httpx.Client(trust_env=False, timeout=10.0) as http:
            for i in range(f.slow_events):
                r = http.post(
                    f"{t.url}/publish",
                    params={"topic": topic},
                    headers=t.auth(),
                    json={"i": i, "pad": PAD_60KB},
                )
                published += r.status_code == 200
                refused += r.status_code != 200
                if i % 10 == 9:
                    sock = server_socket(t.port, wire.local_port)
                    if sock is None or sock["state"] != "ESTAB":
                        left_estab = time.monotonic() - t0
                        break
        watch_until = time.monotonic() + f.release_s
        sock = server_socket(t.port, wire.local_port)
        while left_estab is None and time.monotonic() < watch_until:
            sock = server_socket(t.port, wire.local_port)
            if sock is None or sock["state"] != "ESTAB":
                left_estab = time.monotonic() - t0
                break
            time.sleep(0.25)
        watched = time.monotonic() - t0
        out: dict[str, Any] = {
            "published": published,
            "publish_refused": refused,
            "server_socket": sock,
            "left_established_s": None if left_estab is None else round(left_estab, 2),
        }
        if left_estab is None:
            queued = sock["send_q"] if sock else 0
            answer = f"server socket ESTAB at {watched:.0f} s, Send-Q {queued / 1e6:.1f} MB"
        else:
            state = sock["state"] if sock else "gone"
            answer = f"server socket {state} after {left_estab:.1f} s"
        told = _tail_of_stream(wire, transport)
        out |= told
        return out | {"answer": f"{answer}; client read: {told['told']}"}
    finally:
        wire.close()


def _tail_of_stream(wire: Wire, transport: str) -> dict[str, Any]:
    """Drain what the slow client had not read (bounded) and find how the stream ended."""
    if transport == "ws":
        frames = frames_until_close(wire, 5.0, limit=256 << 20)
        if frames["end"] == "close":
            told = f"close {frames['close_code']} {frames['close_reason']!r}"
        else:
            told = f"no close frame ({frames['end']})"
        return {"frames": frames["frames"], "told": told}
    try:
        data = wire.read_for(5.0, enough=256 << 20)
    except ConnectionResetError:
        # The server gave up on the goodbye and reset the socket: an answer, not a probe failure.
        return {"told": "no event: end (reset by the server)"}
    at = data.rfind(b"event: end")
    if at < 0:
        return {"told": "no event: end"}
    line = data[at : at + 120].split(b"\n\n")[0].decode("utf-8", "replace")
    return {"told": line.replace("\n", " ")}


def slow_ws_consumer(t: Target, f: Form) -> dict[str, Any]:
    return _slow(t, f, "ws")


def slow_sse_consumer(t: Target, f: Form) -> dict[str, Any]:
    return _slow(t, f, "sse")


def publish_flood_60kb(t: Target, f: Form) -> dict[str, Any]:
    """``flood`` publishes of 60 KB into one topic's history: RSS growth per byte uploaded."""
    t0 = time.monotonic()
    codes: dict[int, int] = {}
    with httpx.Client(trust_env=False, timeout=10.0) as http:
        for i in range(f.flood):
            r = http.post(
                f"{t.url}/publish",
                params={"topic": "flood"},
                headers=t.auth(),
                json={"i": i, "pad": PAD_60KB},
            )
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
    uploaded = f.flood * len(PAD_60KB)
    statuses = ", ".join(f"{n} x {code}" for code, n in sorted(codes.items()))
    return {
        "statuses": codes,
        "uploaded_mb": round(uploaded / (1 << 20), 1),
        "elapsed_s": round(time.monotonic() - t0, 2),
        "answer": f"{statuses}",
    }


def sse_topic_cap(t: Target, f: Form) -> dict[str, Any]:
    """Open SSE streams on ``MAX_TOPICS`` new topics (held open), then one more."""
    wires: list[Wire] = []
    codes: dict[str, int] = {}
    try:
        for i in range(MAX_TOPICS):
            w = Wire(t.url, 5.0)
            wires.append(w)
            w.send(get_request(t.host, f"/sse?topic=cap-{i}", t.auth(Accept="text/event-stream")))
            key = describe(await_head(w, 5.0))["answer"].split(",")[0]
            codes[key] = codes.get(key, 0) + 1
        with Wire(t.url, 5.0) as w:
            w.send(get_request(t.host, "/sse?topic=cap-new", t.auth(Accept="text/event-stream")))
            seen = await_head(w, 5.0)
            out = describe(seen)
            if out.get("status") == 200:
                t0 = time.monotonic()
                rest = w.read_for(1.0)
                # read_for stops at EOF or at its deadline: early means the server hung up.
                ended = "closed" if time.monotonic() - t0 < 0.9 else "still open at 1 s"
                out["answer"] += f", then {len(rest)} bytes, {ended}"
    finally:
        for w in wires:
            w.close()
    fill = ", ".join(f"{n} x {k}" for k, n in sorted(codes.items()))
    return out | {"fill": codes, "answer": f"fill {fill}; one more: {out['answer']}"}


def _topic_probe(kind: str, topic: str) -> Callable[[Target, Form], dict[str, Any]]:
    q = quote(topic, safe="")

    def send(t: Target, f: Form) -> dict[str, Any]:
        if kind == "publish":
            return _post(
                t, f"/publish?topic={q}", t.auth(**{"Content-Type": "application/json"}), b"{}"
            )
        if kind == "ws":
            return _upgrade(t, f"/ws?topic={q}", t.auth())
        if kind == "sse":
            with Wire(t.url, 5.0) as w:
                w.send(get_request(t.host, f"/sse?topic={q}", t.auth(Accept="text/event-stream")))
                return describe(await_head(w, 5.0), w)
        return _get(t, f"/{kind}?topic={q}", t.auth())

    return send


def _bad_topics(kind: str) -> Callable[[Target, Form], dict[str, Any]]:
    """The same two bad topics (a space; 129 characters) on one route."""

    def send(t: Target, f: Form) -> dict[str, Any]:
        space = _topic_probe(kind, "a b")(t, f)
        long = _topic_probe(kind, "a" * 129)(t, f)
        return {"space": space, "long": long, "answer": f"{space['answer']} / {long['answer']}"}

    return send


def ws_invalid_utf8(t: Target, f: Form) -> dict[str, Any]:
    wire, out = _open_ws(t, "/ws?topic=abuse")
    with wire:
        if out.get("status") != 101:
            return out
        wire.send(encode_frame(TEXT, b'{"type":"\xff\xfe"}', mask_key=new_mask_key()))
        frames = frames_until_close(wire, 5.0)
        end = frames["end"]
        what = f"close {frames['close_code']}" if end == "close" else f"no close ({end})"
        return frames | {"answer": what}


def ping_flood(t: Target, f: Form) -> dict[str, Any]:
    """``pings`` pings with 125-byte payloads, pongs unread until the end."""
    wire, out = _open_ws(t, "/ws?topic=abuse")
    with wire:
        if out.get("status") != 101:
            return out
        ping = encode_frame(PING, b"p" * 125, mask_key=new_mask_key())
        sent = 0
        stopped = ""
        try:
            while sent < f.pings:
                batch = min(1_000, f.pings - sent)
                wire.send(ping * batch)
                sent += batch
        except TimeoutError:
            stopped = ", server stopped reading"
        except OSError:
            stopped = ", connection dropped"
        frames = frames_until_close(wire, 3.0)
        pongs = frames["frames"].get("pong", 0)
        end = frames["end"]
        tail = f", close {frames['close_code']}" if end == "close" else f", then {end}"
        return frames | {
            "pings_sent": sent,
            "answer": f"{sent} pings sent{stopped}; {pongs} pongs read{tail}",
        }


def echo_64mb(t: Target, f: Form) -> dict[str, Any]:
    # With a token: the body cap is what is probed, not the policy (401 before any body).
    head = http_request("POST", t.host, "/echo", t.auth(), length=f.echo_bytes)
    return _streamed(t, head, f.echo_bytes)


def token_32mb(t: Target, f: Form) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    head = http_request("POST", t.host, "/token", headers, b'{"user": "', length=f.token_bytes)
    return _streamed(t, head, f.token_bytes - 10)


def unknown_route(t: Target, f: Form) -> dict[str, Any]:
    return _get(t, "/no-such-route", t.auth())


NOT_SERVED = "the baseline does not serve {}"

PROBES: list[Probe] = [
    Probe("unknown_route", 0, "GET /no-such-route", "404", unknown_route),
    Probe("publish_no_token", 1, "POST /publish, no token", "401", publish_no_token),
    Probe("admin_ticker_no_token", 1, "POST /admin/ticker?rate=10, no token",
          "401/403 (404 while admin is off)", admin_ticker_no_token),
    Probe("admin_kick_no_token", 1, "POST /admin/kick, no token",
          "401/403 (404 while admin is off)", admin_kick_no_token),
    Probe("chat_no_token", 1, "WS /chat?user=bob, no token", "401, no welcome", chat_no_token,
          node=NOT_SERVED.format("/chat")),
    Probe("publish_bad_origin", 1, f"POST /publish with a token, Origin {EVIL}", "403",
          publish_bad_origin),
    Probe("ws_bad_origin", 1, f"WS /ws with a token, Origin {EVIL}", "403",
          _bad_origin_upgrade("/ws?topic=abuse")),
    Probe("chat_bad_origin", 1, f"WS /chat with a token, Origin {EVIL}", "403",
          _bad_origin_upgrade("/chat?user=abuse"), node=NOT_SERVED.format("/chat")),
    Probe("whiteboard_bad_origin", 1, f"WS /whiteboard/ws with a token, Origin {EVIL}", "403",
          _bad_origin_upgrade("/whiteboard/ws?board=abuse&user=abuse"),
          node=NOT_SERVED.format("/whiteboard/ws")),
    Probe("echo_bad_origin", 1, f"WS /echo with a token, Origin {EVIL}", "403",
          _bad_origin_upgrade("/echo"), node=NOT_SERVED.format("WS /echo")),
    Probe("trickled_headers", 2, "N connections send one header byte per second",
          "closed (408) at the header deadline", trickled_headers),
    Probe("silent_connections", 2, "N connections send nothing",
          "closed at the header deadline", silent_connections),
    Probe("header_100kb", 2, "GET /healthz with one 100 KB header", "431", header_100kb),
    Probe("headers_1100", 2, "GET /healthz with 1,100 headers", "431", headers_1100),
    Probe("unterminated_header", 2, "one header value that never ends (up to the form's MB)",
          "431 and closed before the bytes are read; RSS flat", unterminated_header, rss=True),
    Probe("ws_long_url", 2, "WS upgrade with a 10 KB URL", "414", ws_long_url),
    Probe("ws_long_header", 2, "WS upgrade with a 9 KB header line", "431", ws_long_header),
    Probe("ws_many_headers", 2, "WS upgrade with 200 headers", "431", ws_many_headers),
    Probe("ws_version_12", 5, "WS upgrade with Sec-WebSocket-Version: 12",
          "426 with Sec-WebSocket-Version: 13", ws_version_12),
    Probe("slow_ws_consumer", 3, "WS subscriber stops reading; 60 KB events published",
          "close 1013; server socket released (not ESTAB)", slow_ws_consumer),
    Probe("slow_sse_consumer", 3, "SSE subscriber stops reading; 60 KB events published",
          "event: end; server socket released; no traceback", slow_sse_consumer),
    Probe("publish_flood_60kb", 4, "N publishes of 60 KB into one topic",
          "RSS bounded by the history byte limit", publish_flood_60kb, rss=True),
    Probe("sse_topic_cap", 4, f"SSE on {MAX_TOPICS} new topics (held), then one more",
          "a clean refusal status before the stream; no traceback", sse_topic_cap),
    Probe("topic_newline_publish", 5, "POST /publish?topic=abc%0A", "400 bad_topic",
          _topic_probe("publish", "abc\n")),
    Probe("topic_newline_ws", 5, "WS /ws?topic=abc%0A", "400 bad_topic",
          _topic_probe("ws", "abc\n")),
    Probe("topic_newline_sse", 5, "GET /sse?topic=abc%0A", "400 bad_topic",
          _topic_probe("sse", "abc\n")),
    Probe("topic_newline_poll", 5, "GET /poll?topic=abc%0A", "400 bad_topic",
          _topic_probe("poll", "abc\n")),
    Probe("bad_topic_publish", 5, "POST /publish?topic=a%20b, then a 129-char topic",
          "400 bad_topic / 400 bad_topic", _bad_topics("publish")),
    Probe("bad_topic_poll", 5, "GET /poll?topic=a%20b, then a 129-char topic",
          "400 bad_topic / 400 bad_topic", _bad_topics("poll")),
    Probe("ws_invalid_utf8", 5, "WS text frame with invalid UTF-8", "close 1007; no traceback",
          ws_invalid_utf8),
    Probe("ping_flood", 5, "N pings without reading the pongs", "RSS bounded", ping_flood,
          rss=True),
    Probe("echo_64mb", 5, "POST /echo declaring and sending the form's MB",
          "413 before the body is read", echo_64mb, node=NOT_SERVED.format("/echo"), rss=True),
    Probe("token_32mb", 5, "POST /token declaring and sending the form's MB",
          "413 before the body is read", token_32mb, node=NOT_SERVED.format("/token"), rss=True),
]  # fmt: skip
BY_NAME = {p.name: p for p in PROBES}


# --- targets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSettings:
    """What the two servers run with (recorded in meta.json)."""

    pushlab_flags: tuple[str, ...] = tuple(PUSHLAB_FLAGS)
    pushlab_env: tuple[tuple[str, str], ...] = tuple(PUSHLAB_ENV.items())
    node_flags: tuple[str, ...] = tuple(NODE_FLAGS)
    ticker_rate: float = 1.0


@contextlib.contextmanager
def serve(kind: str, settings: RunSettings, log: Path) -> Iterator[Target]:
    """A fresh server of ``kind``, healthy; stopped (by its process group) on exit."""
    if kind == "node":
        node = baseline.NodeServer(
            settings.ticker_rate, 64, TICKER_TOPIC, flags=settings.node_flags, log_path=log
        )
        with node:
            yield Target(kind, node.url, node.port, node.pid, None)
        return
    args = python_server_args(settings.ticker_rate, 64, TICKER_TOPIC) + list(settings.pushlab_flags)
    with ServerProcess(env=dict(settings.pushlab_env), args=args, log_path=log) as server:
        yield Target(kind, server.url, server.port, server.pid, _login(server.url))


def _login(url: str) -> str | None:
    """A token from ``POST /token`` (None if the server does not issue one)."""
    with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
        r = httpx.post(f"{url}/token", json={"user": "abuse"}, timeout=5.0, trust_env=False)
        return str(r.json()["access_token"])
    return None


# --- running and reporting -----------------------------------------------------------------


def run_probe(
    probe: Probe, kind: str, form: Form, settings: RunSettings, log: Path
) -> dict[str, Any]:
    """One probe against a fresh server of ``kind``: the answer plus RSS and log figures."""
    if kind == "node" and probe.node is not None:
        return {"answer": "n/a", "why": probe.node}
    t0 = time.monotonic()
    try:
        with serve(kind, settings, log) as target:
            with RssPeak(target.pid) as rss:
                try:
                    record = probe.send(target, form)
                except (OSError, httpx.HTTPError) as exc:
                    record = {"answer": f"probe failed: {type(exc).__name__}: {exc}"}
            record |= rss.figures()
    except (RuntimeError, TimeoutError) as exc:
        record = {"answer": f"server failed: {exc}"}
    text = log.read_text(errors="replace") if log.exists() else ""
    record |= log_counts(text) | {"probe_s": round(time.monotonic() - t0, 2)}
    if kind == "node":
        record.pop("tracebacks")  # Node logs no Python tracebacks; error_lines stay comparable
    return record


def cell_text(record: dict[str, Any], always_rss: bool = False) -> str:
    """The answer as the comparison table shows it, with tracebacks and big RSS growth."""
    text = str(record["answer"])
    if record.get("tracebacks"):
        text += f"; {record['tracebacks']} traceback(s) in the log"
    growth = record.get("rss_peak_growth_mb")
    if isinstance(growth, int | float) and (growth >= 10 or always_rss):
        text += f"; RSS +{growth:.0f} MB"
    return text.replace("|", "/")


def run(
    probes: list[Probe],
    form: Form,
    targets: list[str],
    settings: RunSettings,
    root: Path | str = "results",
    progress: bool = True,
) -> Path:
    """Every probe against every target; the results folder's path."""
    out = ResultsDir.create("abuse", root)
    params = {
        "form": form.__dict__,
        "targets": targets,
        "probes": [p.name for p in probes],
        "pushlab_flags": list(settings.pushlab_flags),
        "pushlab_env": dict(settings.pushlab_env),
        "node_flags": list(settings.node_flags),
        "ticker_rate": settings.ticker_rate,
    }
    started = time.time()
    out.write_meta(params, versions=_versions(targets), started_at=started)
    for i, probe in enumerate(probes, 1):
        cell: dict[str, Any] = {
            "probe": probe.name,
            "item": probe.item,
            "attack": probe.attack,
            "expected": probe.expected,
        }
        for kind in targets:
            if progress:
                print(f"[{i}/{len(probes)}] {probe.name} -> {kind}", file=sys.stderr, flush=True)
            record = run_probe(probe, kind, form, settings, out.raw(f"{probe.name}.{kind}.log"))
            cell[kind] = cell_text(record, probe.rss)
            cell[f"{kind}_detail"] = record
        out.add_cell(cell)
    out.write_meta(params, versions=_versions(targets), started_at=started, ended_at=time.time())
    (out.path / "report.md").write_text(report(out.path))
    return out.path


def _versions(targets: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if "node" in targets:
        found["node"] = baseline.node_available()[1]
        lock = json.loads((baseline.NODE_DIR / "package-lock.json").read_text())
        packages = lock.get("packages", {})
        for dep in ("ws", "express"):
            found[dep] = packages.get(f"node_modules/{dep}", {}).get("version")
    return found


def report(path: Path) -> str:
    """report.md: the comparison table, from summary.json and meta.json."""
    meta, cells = load_as(path, AbuseCell)
    targets = meta["params"]["targets"]
    form = meta["params"]["form"]
    lines = [
        f"# Adversarial probes ({form['name']} form)",
        "",
        f"Commit `{meta['machine'].get('git_commit')}`"
        + (" (dirty)" if meta["machine"].get("git_dirty") else "")
        + f"; pushlab flags `{' '.join(meta['params']['pushlab_flags'])}`,"
        + f" env `{json.dumps(meta['params']['pushlab_env'])}`;"
        + f" node flags `{' '.join(meta['params']['node_flags'])}`.",
        "Expected is pushlab's documented answer (issue 16); each cell is what came back.",
        "",
        "| item | probe | expected | " + " | ".join(targets) + " |",
        "|---|---|---|" + "---|" * len(targets),
    ]
    for c in cells:
        answers: Mapping[str, object] = c  # one key per target, named in meta.json
        row = [
            str(c["item"]),
            f"`{c['probe']}`",
            c["expected"],
            *(str(answers[k]) for k in targets),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.abuse", description=__doc__)
    parser.add_argument("--form", choices=sorted(FORMS), default="long")
    parser.add_argument("--only", default="", help="comma-separated probe names (default: all)")
    parser.add_argument("--targets", default="pushlab,node", help="pushlab,node")
    parser.add_argument(
        "--pushlab-env", action="append", default=[], metavar="KEY=VALUE",
        help="an extra PUSHLAB_* setting for the pushlab server (repeatable)",
    )  # fmt: skip
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown probe(s): {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    targets = [t for t in args.targets.split(",") if t]
    if "node" in targets and not baseline.node_available()[0]:
        print(f"node baseline skipped: {baseline.node_available()[1]}", file=sys.stderr)
        targets.remove("node")
    extra = tuple(tuple(kv.split("=", 1)) for kv in args.pushlab_env)
    settings = RunSettings()
    settings = replace(settings, pushlab_env=settings.pushlab_env + extra)
    probes = [BY_NAME[n] for n in names] if names else PROBES
    path = run(probes, FORMS[args.form], targets, settings, args.results)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
