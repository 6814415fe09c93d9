"""``pushlab browser-run``: the four transports as Chromium's own clients see them, measured.

Serves the app with the ticker on, opens the dashboard in headless Chromium, lets it warm up,
then records for ``--seconds`` every event's latency (browser receive time − ``ts_ns``) and the
counters of each transport's client; then times whiteboard strokes from send to acknowledgement
(the stroke coming back with its seq) over WebSocket and over SSE + POST; then opens
``--streams`` EventSources at once (clients/web/streams.html) and records which opened within
``--stall-window`` and each one's first-event latency. All of it once per ``--protocols`` entry:
``direct`` (the app itself, plaintext HTTP/1.1), ``h1`` and ``h2`` (the same nginx with TLS in
front, experiments/front.py, http2 off or on; nginx speaks HTTP/1.1 to the app either way), ``h3``
(the app under hypercorn with HTTP/3, TLS, a server of its own with the same settings; Chromium,
a second instance with QUIC on, is told to speak QUIC to that origin, as it would after seeing its
``Alt-Svc``; the WebSocket still goes over TCP). Every cell names its protocol and what Chromium
negotiated. Writes a results folder (meta.json with every parameter, setting and protocol,
summary.json/csv). The browser, nginx and the server share the machine: on 2 busy cores these
are relative figures, not capacity.
"""

from __future__ import annotations

import argparse
import contextlib
import ssl
import tempfile
from pathlib import Path
from typing import Any

import httpx

from clients.browser import launch
from experiments.front import running_front
from experiments.metrics import summarize
from experiments.records import BrowserCell, BrowserProtocol, check
from experiments.results import ResultsDir
from experiments.tls import make_tls
from feed.settings import Settings
from servers.launch import ServerThread

# name -> (via, http2)
PROTOCOLS = {
    "direct": ("direct", False), "h1": ("nginx", False), "h2": ("nginx", True),
    "h3": ("hypercorn", True),
}  # fmt: skip
NEXT_HOP = "() => performance.getEntriesByType('navigation')[0].nextHopProtocol"
OPENED = "() => window.streamsReport().streams.filter(s => s.openMs !== null).length"

START = """() => {
  window.bench = {};
  for (const [name, c] of Object.entries(window.pushlab.clients)) {
    const b = window.bench[name] = { lat: [], start: { ...c.counters }, t0: performance.now() };
    c.addEventListener("event", (e) => b.lat.push(e.detail.recvMs - e.detail.event.ts_ns / 1e6));
  }
}"""
STOP = """() => Object.fromEntries(Object.entries(window.pushlab.clients).map(([name, c]) => {
  const b = window.bench[name];
  const delta = Object.fromEntries(
    Object.keys(c.counters).map(k => [k, c.counters[k] - b.start[k]]));
  return [name, { lat: b.lat, delta, elapsed_ms: performance.now() - b.t0,
                  contiguous: c.contiguous }];
}))"""
STROKES = """async (n) => {
  const wb = window.whiteboard;
  for (let i = 0; i < n; i++) {
    const id = `bench${i}`;
    const back = new Promise((resolve) => {
      const on = (e) => { if (e.detail.type === "stroke" && e.detail.id === id) {
        wb.client.removeEventListener("frame", on); resolve(); } };
      wb.client.addEventListener("frame", on);
    });
    wb.sendStroke({ type: "stroke", id, user: wb.user, color: "#336699", width: 3,
                    points: [[100 * i, 100], [100 * i + 50, 400]] });
    await back;
  }
  return wb.acks.slice(-n);
}"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags."""
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--rate", type=float, default=20.0, help="ticker events/s")
    parser.add_argument("--size", type=int, default=64, help="ticker payload bytes")
    parser.add_argument("--poll-interval-ms", type=int, default=500, help="short-poll interval")
    parser.add_argument("--strokes", type=int, default=30, help="whiteboard strokes per transport")
    parser.add_argument(
        "--protocols",
        type=protocol_list,
        default=["direct"],
        help="comma list of: direct (the app, plaintext HTTP/1.1), h1, h2 (nginx with TLS, "
        "http2 off or on, in front of the app), h3 (the app under hypercorn with HTTP/3)",
    )
    parser.add_argument("--streams", type=int, default=10, help="EventSources opened at once")
    parser.add_argument(
        "--stall-window", type=float, default=2.0, help="seconds the streams get to open"
    )
    parser.add_argument(
        "--max-streams", type=int, default=None, help="nginx http2_max_concurrent_streams (h2)"
    )
    parser.add_argument("--root", default="results", help="folder for the results folder")
    parser.add_argument("--name", default="browser", help="results folder name suffix")


def protocol_list(text: str) -> list[str]:
    """``--protocols``: known names, each once, in the order given."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PROTOCOLS]
    if unknown or not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"expected a comma list of {', '.join(PROTOCOLS)} (each once), got {text!r}"
        )
    return names


def transport_cell(name: str, raw: dict[str, Any]) -> BrowserCell:
    """Figures of one transport from what the page recorded."""
    delta = raw["delta"]
    events = max(1, delta["events"])
    cell: dict[str, Any] = {
        "kind": "feed",
        "transport": name,
        "events": delta["events"],
        "events_per_s": delta["events"] / (raw["elapsed_ms"] / 1000),
        "payload_bytes_per_event": delta["payloadBytes"] / events,
        "requests_per_event": delta["requests"] / events,
        "reconnects": delta["reconnects"],
        "gaps": delta["gaps"],
        "duplicates": delta["duplicates"],
        "no_loss": raw["contiguous"],
    }
    if name in ("poll", "long-poll"):
        cell["wire_bytes_per_event"] = delta["wireBytes"] / events
    cell.update(summarize(sorted(raw["lat"]), prefix="latency_ms_"))
    return check(BrowserCell, cell, f"browser cell {name}")


def _feed(browser: Any, url: str, args: argparse.Namespace) -> list[BrowserCell]:
    page = browser.new_page()
    page.set_default_timeout((args.seconds + args.warmup + 30) * 1000)
    page.goto(f"{url}/")
    hop = page.evaluate(NEXT_HOP)
    page.wait_for_function(
        "() => window.pushlab"
        " && Object.values(window.pushlab.clients).every(c => c.state === 'open')"
    )
    page.fill("#interval", str(args.poll_interval_ms))
    page.dispatch_event("#interval", "change")
    page.wait_for_timeout(args.warmup * 1000)  # a timed window is what is being measured
    page.evaluate(START)
    page.wait_for_timeout(args.seconds * 1000)
    raw = page.evaluate(STOP)
    page.close()
    cells = [transport_cell(name, r) for name, r in raw.items()]
    for cell in cells:
        cell["next_hop_protocol"] = hop
    return cells


def _streams(
    browser: Any,
    url: str,
    publish_url: str,
    topic: str,
    args: argparse.Namespace,
    verify: ssl.SSLContext | bool = True,
) -> BrowserCell:
    """Open ``--streams`` EventSources at once; which open in the window; first-event latency."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = browser.new_page()
    page.set_default_timeout((args.stall_window + 30) * 1000)
    page.goto(f"{url}/web/streams.html?n={args.streams}&topic={topic}")
    with contextlib.suppress(PlaywrightTimeout):  # a stall: that is what is measured
        page.wait_for_function(
            f"() => ({OPENED})() === {args.streams}", timeout=args.stall_window * 1000
        )
    opened = page.evaluate(OPENED)
    r = httpx.post(
        f"{publish_url}/publish", params={"topic": topic}, json={}, trust_env=False, verify=verify
    )
    r.raise_for_status()
    got = "n => window.streamsReport().streams.filter(s => s.events > 0).length === n"
    page.wait_for_function(got, arg=opened)
    report = page.evaluate("window.streamsReport()")
    page.close()
    open_streams = [s for s in report["streams"] if s["openMs"] is not None]
    cell: dict[str, Any] = {
        "kind": "streams",
        "transport": "sse",
        "next_hop_protocol": report["protocol"],
        "streams": report["n"],
        "streams_open": len(open_streams),
        "streams_waiting": report["n"] - len(open_streams),
        "open_ms_max": max((s["openMs"] for s in open_streams), default=float("nan")),
    }
    cell.update(summarize([s["firstLatencyMs"] for s in open_streams], prefix="first_event_ms_"))
    return check(BrowserCell, cell, "browser streams cell")


def _whiteboard(browser: Any, url: str, transport: str, n: int, board: str) -> BrowserCell:
    page = browser.new_page()
    # A fresh board per run of this: a stroke id the board has seen is not acknowledged again.
    page.goto(f"{url}/whiteboard?board={board}&user=bench&transport={transport}")
    page.wait_for_function("() => window.whiteboard.client.state === 'open'")
    hop = page.evaluate(NEXT_HOP)
    acks = page.evaluate(STROKES, n)
    page.close()
    cell: dict[str, Any] = {"kind": "whiteboard_ack", "next_hop_protocol": hop}
    cell["transport"] = "sse+post" if transport == "sse" else "ws"
    cell.update(summarize(sorted(acks), prefix="ack_ms_"))
    return check(BrowserCell, cell, f"whiteboard cell {transport}")


def run(args: argparse.Namespace) -> int:
    """Measure, write the results folder, print a short table."""
    from playwright.sync_api import sync_playwright

    settings = Settings.from_env(ticker_rate=args.rate, ticker_size=args.size)
    out = ResultsDir.create(args.name, args.root)
    params = {k: v for k, v in vars(args).items() if k != "func"}
    protocols = [_protocol(name, args) for name in args.protocols]
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(ServerThread(settings))
        p = stack.enter_context(sync_playwright())
        settings = settings.replace(port=server.port)  # recorded as served
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pushlab-browser-")))
        tls = make_tls(scratch / "tls") if any(x["via"] != "direct" for x in protocols) else None
        # Chromium takes no CA file: it trusts exactly this certificate's key.
        pin = (f"--ignore-certificate-errors-spki-list={tls.spki_pin()}",) if tls else ()
        browser = launch(p, args=pin)
        stack.callback(browser.close)
        out.write_meta(
            params, settings=settings.as_dict(), browser=browser.version, protocols=protocols
        )
        for proto in protocols:
            url, publish, page_browser = server.url, server.url, browser
            verify: ssl.SSLContext | bool = True
            if proto["via"] == "hypercorn":
                assert tls is not None
                h3 = stack.enter_context(
                    ServerThread(
                        settings.replace(
                            port=0, tls_cert=str(tls.cert), tls_key=str(tls.key), http2=True,
                            http3=True,
                        )
                    )
                )  # fmt: skip
                url = publish = h3.url
                verify = tls.client_context()
                quic = f"--origin-to-force-quic-on=127.0.0.1:{h3.port}"
                page_browser = launch(p, quic=True, args=(*pin, quic))
                stack.callback(page_browser.close)
            if proto["via"] == "nginx":
                front = running_front(
                    scratch / proto["name"],
                    [server.port],
                    tls=tls,
                    http2=proto["http2"],
                    max_streams=proto["max_streams"],
                )
                url = stack.enter_context(front).url
            cells = _feed(page_browser, url, args)
            cells += [
                _whiteboard(page_browser, url, t, args.strokes, f"bench-{proto['name']}-{t}")
                for t in ("ws", "sse")
            ]
            topic = f"browser-streams-{proto['name']}"
            cells.append(_streams(page_browser, url, publish, topic, args, verify))
            for cell in cells:
                out.add_cell({"protocol": proto["name"], **cell})
    for c in out.cells:
        print(_line(c))
    print(f"wrote {out.path}")
    return 0


def _protocol(name: str, args: argparse.Namespace) -> BrowserProtocol:
    via, http2 = PROTOCOLS[name]
    return {
        "name": name,
        "via": via,
        "http2": http2,
        "max_streams": args.max_streams if http2 else None,
    }


def _line(c: Any) -> str:
    head = f"{c['protocol']:>6} ({c['next_hop_protocol']})"
    if c["kind"] == "feed":
        return (
            f"{head} {c['transport']:>9}: {c['events']} events, {c['events_per_s']:.1f}/s, "
            f"latency p50 {c['latency_ms_p50']:.1f} ms p99 {c['latency_ms_p99']:.1f} ms, "
            f"{c['requests_per_event']:.2f} requests/event, no loss: {c['no_loss']}"
        )
    if c["kind"] == "streams":
        return (
            f"{head} {c['streams']} EventSources: {c['streams_open']} open, "
            f"{c['streams_waiting']} waiting; first event p50 "
            f"{c.get('first_event_ms_p50', float('nan')):.1f} ms"
        )
    return (
        f"{head} whiteboard {c['transport']}: stroke ack p50 {c['ack_ms_p50']:.1f} ms "
        f"p99 {c['ack_ms_p99']:.1f} ms over {c['ack_ms_count']:.0f} strokes"
    )
