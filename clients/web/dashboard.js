// The dashboard: one panel per transport, every client subscribed to the ticker's topic.
// window.pushlab exposes the clients so tests (and curious readers, in devtools) can look inside.
import { nowMs } from "./feed-client.js";
import { LongPollClient } from "./long-poll.js";
import { ShortPollClient } from "./short-poll.js";
import { SSEClient } from "./sse.js";
import { SlidingWindow } from "./stats.js";
import { StreamClient } from "./stream.js";
import { WebSocketClient } from "./ws.js";
import { WebTransportClient } from "./webtransport.js";

const params = new URLSearchParams(location.search);
const token = params.get("token");
// With auth on, the admin routes need a token with the admin claim (servers/policy.py).
const authHeaders = token ? { Authorization: `Bearer ${token}` } : {};
// Backoff base and cap (ms) may be set in the URL (?base_ms=&cap_ms=), e.g. to watch it grow.
const retry = Object.fromEntries(
  [["baseMs", "base_ms"], ["capMs", "cap_ms"]]
    .filter(([, q]) => params.has(q)).map(([k, q]) => [k, Number(params.get(q))]));
const KINDS = [
  ["poll", "Short polling", ShortPollClient, "/poll"],
  ["long-poll", "Long polling", LongPollClient, "/long-poll"],
  ["sse", "Server-Sent Events", SSEClient, null],
  ["ws", "WebSocket", WebSocketClient, null],
  ["stream", "HTTP streaming (fetch)", StreamClient, null],
];
const ROWS = [
  ["events", "events"], ["rate", "events/s"], ["p50", "latency p50"], ["p99", "latency p99"],
  ["reconnects", "reconnects"], ["gaps", "gaps (recovered=false)"], ["duplicates", "duplicates dropped"],
  ["lastSeq", "last seq"], ["payloadBytes", "payload bytes"], ["wireBytes", "wire bytes"],
];

async function main() {
  const res = await fetch("/admin/ticker", { headers: authHeaders }).catch(() => null);
  const ticker = res?.ok ? await res.json() : null;
  const topic = params.get("topic") ?? ticker?.topic ?? "ticks";
  setupControls(ticker, res?.status === 401 || res?.status === 403);
  const panels = {};
  const root = document.getElementById("panels");
  // WebTransport only when the server serves it (--webtransport-port) and the browser has it.
  const wt = "WebTransport" in window && (await fetch("/webtransport").catch(() => null))?.ok;
  const kinds = wt ? [...KINDS, ["wt", "WebTransport (HTTP/3)", WebTransportClient, null]] : KINDS;
  for (const [key, title, Client, path] of kinds) {
    const options = { token, intervalMs: Number(document.getElementById("interval").value), ...retry };
    panels[key] = makePanel(root, key, title, new Client("", topic, options), path);
  }
  window.pushlab = { topic, panels, clients: Object.fromEntries(Object.entries(panels).map(([k, p]) => [k, p.client])) };
  watchResourceTiming(panels);
  document.getElementById("interval").addEventListener("change", (e) => {
    panels.poll.client.intervalMs = Math.max(10, Number(e.target.value));
  });
  for (const p of Object.values(panels)) p.client.start();
  setInterval(() => Object.values(panels).forEach(render), 250);
}

function makePanel(root, key, title, client, path) {
  const el = document.createElement("section");
  el.className = "panel";
  el.dataset.transport = key;
  el.innerHTML = `
    <h2><span>${title}</span><span class="check" title="no lost seq"></span>
        <span class="state"></span></h2>
    <table>${ROWS.map(([k, label]) => `<tr><td>${label}</td><td class="v" data-k="${k}">–</td></tr>`).join("")}</table>
    <button type="button" class="drop">drop connection</button>
    <div class="log"></div>`;
  root.appendChild(el);
  const panel = { key, el, client, path, window: new SlidingWindow(10000), log: [] };
  el.querySelector(".drop").addEventListener("click", () => client.drop());
  client.addEventListener("event", (e) => {
    const { event, recvMs } = e.detail;
    panel.window.add(recvMs, recvMs - event.ts_ns / 1e6);
    panel.log.unshift(`#${event.seq} ${JSON.stringify(event.data).slice(0, 60)}`);
    panel.log.length = Math.min(panel.log.length, 10);
  });
  client.addEventListener("gap", (e) => {
    panel.log.unshift(`gap: ${e.detail.reason}, resume after ${e.detail.resume_after}`);
  });
  client.addEventListener("fatal", (e) => panel.log.unshift(`stopped: ${e.detail}`));
  return panel;
}

function fmtMs(v) {
  return Number.isNaN(v) ? "–" : `${v.toFixed(1)} ms`;
}

function render(panel) {
  const { client, el } = panel;
  const s = panel.window.summary(nowMs());
  const c = client.counters;
  const values = {
    events: c.events, rate: s.rate.toFixed(1), p50: fmtMs(s.p50), p99: fmtMs(s.p99),
    reconnects: c.reconnects, gaps: c.gaps, duplicates: c.duplicates, lastSeq: client.lastSeq ?? "–",
    payloadBytes: c.payloadBytes.toFixed(0), wireBytes: panel.path ? c.wireBytes : "n/a (stream)",
  };
  for (const [k, v] of Object.entries(values)) el.querySelector(`[data-k="${k}"]`).textContent = v;
  const state = el.querySelector(".state");
  state.textContent = client.state;
  state.className = `state ${client.state}`;
  const check = el.querySelector(".check");
  const ok = client.contiguous;
  check.textContent = c.events ? (ok ? "✓" : "✗") : "";
  check.className = `check ${ok ? "ok" : "bad"}`;
  el.querySelector(".log").innerHTML = panel.log.map((l) => `<div>${escapeHtml(l)}</div>`).join("");
}

function escapeHtml(s) {
  return s.replace(/[&<>"]/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[ch]);
}

// Polling requests finish, so the browser reports their transfer size (headers + body).
function watchResourceTiming(panels) {
  performance.setResourceTimingBufferSize(100000);
  performance.addEventListener("resourcetimingbufferfull", () => performance.clearResourceTimings());
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const path = new URL(entry.name).pathname;
      for (const p of Object.values(panels)) {
        if (p.path === path) p.client.counters.wireBytes += entry.transferSize;
      }
    }
  }).observe({ type: "resource" });
}

function setupControls(ticker, denied) {
  const rate = document.getElementById("rate");
  const size = document.getElementById("size");
  const status = document.getElementById("ticker-status");
  if (!ticker) {
    status.textContent = denied
      ? "ticker control: admin routes are off or need an admin token (pushlab serve --admin)"
      : "no ticker on this server (start it with --rate)";
    document.getElementById("apply").disabled = true;
    return;
  }
  rate.value = ticker.rate;
  size.value = ticker.size;
  document.getElementById("apply").addEventListener("click", async () => {
    const q = new URLSearchParams({ rate: rate.value, size: size.value });
    const res = await fetch(`/admin/ticker?${q}`, { method: "POST", headers: authHeaders });
    const body = await res.json();
    status.textContent = res.ok ? `ticker: ${body.rate} ev/s, ${body.size} B` : `refused: ${body.error}`;
  });
}

main();
