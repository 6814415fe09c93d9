// N EventSources to this page's origin, opened at once; each records when it opened and its first
// event. window.streamsReport() returns the figures (tests and `pushlab browser-run` read it).
import { nowMs } from "./feed-client.js";

const params = new URLSearchParams(location.search);
// 1..64 streams; anything else in ?n= (missing, not a whole number) means the default, 10.
const asked = Number(params.get("n") ?? 10);
const n = Number.isInteger(asked) ? Math.max(1, Math.min(64, asked)) : 10;
const topic = params.get("topic") ?? "streams";
// What Chromium negotiated for this page: "http/1.1" or "h2" (the streams use the same origin).
const protocol = performance.getEntriesByType("navigation")[0]?.nextHopProtocol ?? "";
const t0 = performance.now();

const streams = [...Array(n)].map((_, i) => {
  // `stream` only labels the request (nginx's access log shows which stream used which
  // connection); the server ignores it.
  const es = new EventSource(`/sse?topic=${encodeURIComponent(topic)}&stream=${i + 1}`);
  const s = { i: i + 1, es, openMs: null, firstEventMs: null, firstLatencyMs: null, events: 0 };
  es.onopen = () => { s.openMs ??= performance.now() - t0; };
  es.onmessage = (e) => {
    s.events += 1;
    if (s.firstEventMs === null) {
      s.firstEventMs = performance.now() - t0;
      s.firstLatencyMs = nowMs() - JSON.parse(e.data).ts_ns / 1e6;
    }
  };
  return s;
});

/** Plain data: the protocol, and per stream whether it opened, when, and its first event. */
window.streamsReport = () => ({
  protocol,
  n,
  topic,
  streams: streams.map(({ es, ...s }) => ({ ...s, readyState: es.readyState })),
});
window.closeStreams = () => streams.forEach((s) => s.es.close());

const table = document.getElementById("streams");
const fmt = (v) => (v === null ? "–" : `${v.toFixed(1)} ms`);
function render() {
  const r = window.streamsReport();
  const open = r.streams.filter((s) => s.openMs !== null).length;
  document.getElementById("summary").textContent = `${protocol}: ${open} of ${n} open`;
  table.innerHTML = "<tr><th>stream</th><th>state</th><th>opened at</th><th>first event at</th>"
    + "<th>first-event latency</th><th>events</th></tr>"
    + r.streams.map((s) => `<tr data-stream="${s.i}"><td>${s.i}</td>`
      + `<td>${["connecting", "open", "closed"][s.readyState]}</td><td>${fmt(s.openMs)}</td>`
      + `<td>${fmt(s.firstEventMs)}</td><td>${fmt(s.firstLatencyMs)}</td><td>${s.events}</td></tr>`)
      .join("");
}
setInterval(render, 250);
render();
