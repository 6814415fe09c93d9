// The whiteboard page: draws what the board says, sends finished strokes, shows who is there.
// window.whiteboard exposes the state to tests.
import { BoardClient } from "./board-client.js";

const params = new URLSearchParams(location.search);
const board = params.get("board") ?? "lobby";
const token = params.get("token");
// With auth on the server takes the user from the token's sub: read it from the JWT's payload.
const tokenUser = token ? JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub : null;
const user = tokenUser ?? params.get("user") ?? `guest-${Math.random().toString(36).slice(2, 7)}`;
const transport = params.get("transport") === "sse" ? "sse" : "ws";
const canvas = document.getElementById("board");
const ctx = canvas.getContext("2d");
const SCALE = 10; // board coordinates are 0..10,000; the canvas shows 0..1000 x 0..600 of them

const strokes = new Map(); // "user/id" -> stroke op, in board order
const pending = new Map(); // my strokes sent but not yet back with a seq
const sentAt = new Map(); // stroke id -> performance.now() when sent
const acks = []; // ms from sending a stroke to receiving it back with its seq (round trip)
const cursors = new Map();
let users = [];
const log = [];

const client = new BoardClient({ board, user, token, transport });
window.whiteboard = { client, strokes, pending, cursors, acks, sendStroke, get users() { return users; }, board, user, transport, log };

document.getElementById("title").textContent = `board “${board}” as ${user} over ${transport === "sse" ? "SSE + POST" : "WebSocket"}`;

client.addEventListener("frame", (e) => apply(e.detail));
client.addEventListener("state", schedule);

function apply(msg) {
  switch (msg.type) {
    case "snapshot":
      strokes.clear();
      for (const s of msg.strokes) strokes.set(`${s.user}/${s.id}`, s);
      users = msg.users;
      break;
    case "stroke":
      strokes.set(`${msg.user}/${msg.id}`, msg);
      if (msg.user === user && sentAt.has(msg.id)) {
        acks.push(performance.now() - sentAt.get(msg.id));
        sentAt.delete(msg.id);
      }
      if (msg.user === user) pending.delete(msg.id);
      break;
    case "undo":
      strokes.delete(`${msg.user}/${msg.id}`);
      break;
    case "clear":
      strokes.clear();
      break;
    case "ready":
    case "presence":
      users = msg.users;
      for (const u of cursors.keys()) if (!users.includes(u)) cursors.delete(u);
      break;
    case "cursor":
      if (msg.user !== user) cursors.set(msg.user, msg);
      break;
    case "error":
      log.unshift(`refused: ${msg.error}`);
      // A refused stroke never comes back with a seq: stop showing it as in flight.
      if (["invalid_message", "too_many_points", "duplicate_stroke", "board_full", "rate_limited"].includes(msg.error)) pending.clear();
      break;
  }
  if (msg.type !== "cursor") log.unshift(`${msg.type}${msg.seq ? ` #${msg.seq}` : ""}${msg.user ? ` by ${msg.user}` : ""}`);
  log.length = Math.min(log.length, 12);
  schedule();
}

let frameQueued = false;
function schedule() {
  if (!frameQueued) { frameQueued = true; requestAnimationFrame(render); }
}

function drawStroke(s, alpha = 1) {
  ctx.globalAlpha = alpha;
  ctx.strokeStyle = s.color;
  ctx.lineWidth = s.width;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  s.points.forEach(([x, y], i) => (i ? ctx.lineTo(x / SCALE, y / SCALE) : ctx.moveTo(x / SCALE, y / SCALE)));
  if (s.points.length === 1) ctx.lineTo(s.points[0][0] / SCALE + 0.1, s.points[0][1] / SCALE);
  ctx.stroke();
  ctx.globalAlpha = 1;
}

function render() {
  frameQueued = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (const s of strokes.values()) drawStroke(s);
  for (const s of pending.values()) drawStroke(s, 0.5); // sent, not acknowledged yet
  if (current) drawStroke(current, 0.8);
  document.getElementById("users").innerHTML = users
    .map((u) => `<li class="${u === user ? "me" : ""}">${escapeHtml(u)}${cursors.get(u)?.drawing ? " ✎ drawing" : ""}</li>`).join("");
  document.getElementById("cursors").innerHTML = [...cursors.values()]
    .map((c) => `<div class="cursor ${c.drawing ? "drawing" : ""}" style="left:${c.x / SCALE}px;top:${c.y / SCALE}px">${escapeHtml(c.user)}</div>`).join("");
  document.getElementById("status").textContent = `${client.state} · reconnects ${client.reconnects}`;
  const ack = acks.length ? ` · last stroke acked in ${acks[acks.length - 1].toFixed(1)} ms` : "";
  document.getElementById("info").textContent = `${strokes.size} strokes · board seq ${client.seq ?? "–"}${ack}`;
  document.getElementById("log").innerHTML = log.map((l) => `<div>${escapeHtml(l)}</div>`).join("");
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"]/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[ch]);
}

// Drawing: points in board coordinates; the stroke goes out on pointer-up, cursor moves ~20/s.
let current = null;
let lastCursor = 0;
function boardPoint(e) {
  const r = canvas.getBoundingClientRect();
  const x = Math.min(Math.max(0, (e.clientX - r.left) * (canvas.width / r.width)), canvas.width);
  const y = Math.min(Math.max(0, (e.clientY - r.top) * (canvas.height / r.height)), canvas.height);
  return [Math.round(x * SCALE), Math.round(y * SCALE)];
}
let cursorTimer = null;
let cursorLatest = null;
function sendCursor(p, drawing, force = false) {
  // At most one cursor frame per 50 ms, but the last position always goes out (trailing edge).
  cursorLatest = { type: "cursor", x: p[0], y: p[1], drawing };
  const wait = 50 - (performance.now() - lastCursor);
  if (force || wait <= 0) flushCursor();
  else if (cursorTimer === null) cursorTimer = setTimeout(flushCursor, wait);
}
function flushCursor() {
  clearTimeout(cursorTimer);
  cursorTimer = null;
  lastCursor = performance.now();
  if (cursorLatest) client.send(cursorLatest);
  cursorLatest = null;
}
canvas.addEventListener("pointerdown", (e) => {
  canvas.setPointerCapture(e.pointerId);
  const p = boardPoint(e);
  current = {
    type: "stroke", id: Math.random().toString(36).slice(2, 12), user,
    color: document.getElementById("color").value,
    width: Number(document.getElementById("width").value) || 4, points: [p],
  };
  sendCursor(p, true, true);
  schedule();
});
canvas.addEventListener("pointermove", (e) => {
  const p = boardPoint(e);
  if (current && current.points.length < 2000) current.points.push(p);
  sendCursor(p, !!current);
  if (current) schedule();
});
canvas.addEventListener("pointerup", (e) => {
  if (!current) return;
  const stroke = current;
  current = null;
  sendStroke(stroke);
  sendCursor(boardPoint(e), false, true);
});

/** Send a finished stroke; it shows faded until it comes back with its seq. */
function sendStroke(stroke) {
  pending.set(stroke.id, stroke);
  sentAt.set(stroke.id, performance.now());
  const { user: _u, ...frame } = stroke;
  return client.send(frame).then((err) => { if (err) { pending.delete(stroke.id); sentAt.delete(stroke.id); } schedule(); });
}
document.getElementById("undo").addEventListener("click", () => client.send({ type: "undo" }));
document.getElementById("clear").addEventListener("click", () => client.send({ type: "clear" }));

client.start();
