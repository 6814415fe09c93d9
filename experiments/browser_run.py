"""``pushlab browser-run``: the four transports as Chromium's own clients see them, measured.

Serves the app with the ticker on, opens the dashboard in headless Chromium, lets it warm up,
then records for ``--seconds`` every event's latency (browser receive time − ``ts_ns``) and the
counters of each transport's client; then times whiteboard strokes from send to acknowledgement
(the stroke coming back with its seq) over WebSocket and over SSE + POST. Writes a results folder
(meta.json with every parameter and setting, summary.json/csv). The browser and the server share
the machine: on 2 busy cores these are relative figures, not capacity.
"""

from __future__ import annotations

import argparse
from typing import Any

from clients.browser import launch
from experiments.metrics import summarize
from experiments.records import BrowserCell, check
from experiments.results import ResultsDir
from feed.settings import Settings
from servers.launch import ServerThread

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
    parser.add_argument("--root", default="results", help="folder for the results folder")
    parser.add_argument("--name", default="browser", help="results folder name suffix")


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
    return [transport_cell(name, r) for name, r in raw.items()]


def _whiteboard(browser: Any, url: str, transport: str, n: int) -> BrowserCell:
    page = browser.new_page()
    page.goto(f"{url}/whiteboard?board=bench-{transport}&user=bench&transport={transport}")
    page.wait_for_function("() => window.whiteboard.client.state === 'open'")
    acks = page.evaluate(STROKES, n)
    page.close()
    cell: dict[str, Any] = {"kind": "whiteboard_ack"}
    cell["transport"] = "sse+post" if transport == "sse" else "ws"
    cell.update(summarize(sorted(acks), prefix="ack_ms_"))
    return check(BrowserCell, cell, f"whiteboard cell {transport}")


def run(args: argparse.Namespace) -> int:
    """Measure, write the results folder, print a short table."""
    from playwright.sync_api import sync_playwright

    settings = Settings.from_env(ticker_rate=args.rate, ticker_size=args.size)
    out = ResultsDir.create(args.name, args.root)
    params = {k: v for k, v in vars(args).items() if k != "func"}
    with ServerThread(settings) as server, sync_playwright() as p:
        url = server.url
        settings = settings.replace(port=server.port)  # recorded as served
        browser = launch(p)
        try:
            out.write_meta(params, settings=settings.as_dict(), browser=browser.version)
            for cell in _feed(browser, url, args):
                out.add_cell(cell)
            for transport in ("ws", "sse"):
                out.add_cell(_whiteboard(browser, url, transport, args.strokes))
        finally:
            browser.close()
    for c in out.cells:
        if c["kind"] == "feed":
            print(
                f"{c['transport']:>9}: {c['events']} events, {c['events_per_s']:.1f}/s, "
                f"latency p50 {c['latency_ms_p50']:.1f} ms p99 {c['latency_ms_p99']:.1f} ms, "
                f"{c['requests_per_event']:.2f} requests/event, no loss: {c['no_loss']}"
            )
        else:
            print(
                f"whiteboard {c['transport']}: stroke ack p50 {c['ack_ms_p50']:.1f} ms "
                f"p99 {c['ack_ms_p99']:.1f} ms over {c['ack_ms_count']:.0f} strokes"
            )
    print(f"wrote {out.path}")
    return 0
