'use strict';
/*
 * The baseline row: "what the seed would have built" — Express for publish and admin, `ws` for
 * WebSocket, plain Node `http` for Server-Sent Events and the polls — speaking pushlab's contract
 * (docs/protocol.md) so the lab's clients and load drivers run against it unchanged.
 *
 *   node server.js [--port 8000] [--host 127.0.0.1] [--rate 10] [--size 64] [--topic ticks]
 *                  [--history 10000] [--subscriber-buffer 1000] [--retry-ms 1000]
 *                  [--keepalive-s 15] [--poll-batch 1000] [--long-poll-timeout-s 20]
 *                  [--long-poll-max-timeout-s 30] [--tls-cert PEM --tls-key PEM [--http2 1]]
 *
 * Endpoints: POST /publish?topic=, GET /healthz, POST /admin/kick?topic=, WS /ws?topic=&since=,
 * GET /sse?topic=&since= (Last-Event-ID wins), GET /poll?topic=&since=&limit=,
 * GET /long-poll?topic=&since=&timeout=, GET and POST /admin/ticker?rate=&size= (as
 * servers/demos/pages.py: rate 0 pauses, a change restarts the schedule from now; 404 when started
 * with rate 0). There is no admin switch, so /admin/* never answers 403.
 *
 * Deliberate choices, so the row measures the seed's stack and not a tuned one:
 * - SSE and the two polls are served by plain Node `http` (no Express routing per request): the
 *   polls are answered thousands of times a second in a capacity run, and the baseline should be
 *   the strongest plain Node, so a gap to it is the transport's or Python's, not Express's;
 * - each event is serialised once; the same string goes to every WebSocket (ws `send`) and the
 *   same SSE frame string to every stream;
 * - ts_ns is wall-clock nanoseconds comparable with Python's time.time_ns() on the same host:
 *   Date.now() is anchored at a millisecond edge (to ~25 µs), then advanced with
 *   process.hrtime.bigint();
 * - a slow consumer is cut when its socket buffer holds more than subscriber-buffer events
 *   (bytes of the latest frame x the buffer), WS 1013 / SSE `event: end` reason overflow;
 * - every socket has an 'error' handler: without one a bad frame kills a Node `ws` server.
 *
 * With --tls-cert/--tls-key it serves HTTPS (node:https, ALPN http/1.1); with --http2 1 as well,
 * node:http2's secure server (ALPN h2, HTTP/1.1 still accepted for the admin and health routes).
 * Over HTTP/2 the polls and SSE run on node:http2's compatibility API; the WebSocket does not:
 * `ws` has no RFC 8441 (extended CONNECT), so /ws needs an HTTP/1.1 connection.
 */
const fs = require('node:fs');
const http = require('node:http');
const http2 = require('node:http2');
const https = require('node:https');
const express = require('express');
const { WebSocketServer, WebSocket } = require('ws');

const TOPIC_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
const MAX_SEQ = (1n << 63n) - 1n;
const MAX_BODY = 64 * 1024;
const MAX_BAD_FRAMES = 10;
const MAX_TICKER_RATE = 10000; // servers/demos/pages.py MAX_TICKER_RATE

function parseArgs(argv) {
  const opts = {
    port: 8000, host: '127.0.0.1', rate: 10, size: 64, topic: 'ticks', history: 10000,
    'subscriber-buffer': 1000, 'retry-ms': 1000, 'keepalive-s': 15,
    // feed/settings.py poll_batch, long_poll_timeout_s, long_poll_max_timeout_s
    'poll-batch': 1000, 'long-poll-timeout-s': 20, 'long-poll-max-timeout-s': 30,
    'tls-cert': '', 'tls-key': '', http2: 0,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in opts) || i + 1 >= argv.length) {
      console.error(`usage: node server.js [--${Object.keys(opts).join(' N] [--')} N]`);
      process.exit(2);
    }
    opts[key] = typeof opts[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  return opts;
}

// --- clock: wall-clock ns, monotonic between anchors -------------------------------------
function anchorClock() {
  // Catch Date.now() ticking over to a new millisecond, bracketed by two hrtime readings: the
  // tick happened between them, so the anchor is good to half their distance. A bracket wider
  // than 50 µs (the process was preempted) is thrown away and the next tick is tried.
  let best = null;
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = Date.now();
    let ms = first;
    let before = 0n;
    let after = 0n;
    while (ms === first) {
      before = process.hrtime.bigint();
      ms = Date.now();
      after = process.hrtime.bigint();
    }
    const width = after - before;
    if (best === null || width < best.width) {
      best = { wallNs: BigInt(ms) * 1000000n, hr: (before + after) / 2n, width };
    }
    if (width < 50000n) break;
  }
  return best;
}
const CLOCK = anchorClock();
const nowNs = () => CLOCK.wallNs + (process.hrtime.bigint() - CLOCK.hr);

// --- payload: the same shape and size as feed/ticker.py make_payload ---------------------
function pyFloat(x) {
  const s = String(x); // shortest round-trip repr, like Python's repr; Python keeps ".0"
  return /^-?\d+$/.test(s) ? `${s}.0` : s;
}
function makePayload(i, size) {
  const price = pyFloat(Math.round((100 + 10 * Math.sin(i / 50)) * 1e4) / 1e4);
  const overhead = `{"i":${i},"price":${price},"pad":""}`.length;
  return `{"i":${i},"price":${price},"pad":"${'x'.repeat(Math.max(0, size - overhead))}"}`;
}

// --- the feed: per-topic ring buffer + subscribers ----------------------------------------
class Topic {
  constructor(name, capacity) {
    this.name = name;
    this.capacity = capacity;
    this.ring = new Array(capacity);
    this.last = 0;
    this.count = 0;
    this.sockets = new Set(); // WebSocket subscribers
    this.streams = new Set(); // SSE responses
    this.waiters = new Set(); // parked long polls: called once with the next event
    this.wakePending = false;
  }
  oldest() { return this.count ? this.last - this.count + 1 : null; }
  append(ev) {
    this.ring[ev.seq % this.capacity] = ev;
    this.last = ev.seq;
    this.count = Math.min(this.count + 1, this.capacity);
  }
  after(seq, upto = this.last) {
    const out = [];
    for (let s = seq + 1; s <= upto; s++) out.push(this.ring[s % this.capacity]);
    return out;
  }
  // Answer every parked long poll once (each re-reads from its cursor); how many there were.
  wakeAll() {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
    return waiters.length;
  }
  // feed/history.py History.read: at most `limit` events after `since` (null: from now).
  read(since, limit) {
    const [start, gap] = this.resolve(since);
    const stop = Math.min(this.last, start + limit);
    const events = this.after(start, stop);
    return { events, cursor: events.length ? stop : start, more: stop < this.last, gap };
  }
  // Same rules as feed/history.py History.resolve: [cursor actually served, gap object or null].
  resolve(since) {
    if (since === null) return [this.last, null];
    const oldest = this.oldest();
    const first = oldest !== null ? oldest : this.last + 1;
    let reason = null;
    if (since > this.last) reason = 'ahead';
    else if (since + 1 < first) reason = 'expired';
    if (reason === null) return [since, null];
    const gap = {
      type: 'gap', recovered: false, topic: this.name, since, oldest_seq: oldest,
      last_seq: this.last, reason, resume_after: first - 1,
    };
    return [first - 1, gap];
  }
}

class Feed {
  constructor(opts) {
    this.opts = opts;
    this.topics = new Map();
    this.published = 0;
  }
  topic(name) {
    let t = this.topics.get(name);
    if (!t) {
      t = new Topic(name, this.opts.history);
      this.topics.set(name, t);
    }
    return t;
  }
  publish(name, dataJson) {
    const t = this.topic(name);
    const seq = t.last + 1;
    const ts = nowNs();
    // Serialised once; every subscriber gets these very strings.
    const text = `{"topic":${JSON.stringify(name)},"seq":${seq},"ts_ns":${ts},"data":${dataJson}}`;
    const ev = { seq, ts, text, sse: `id: ${seq}\ndata: ${text}\n\n` };
    t.append(ev);
    this.published++;
    const limit = this.opts['subscriber-buffer'] * Buffer.byteLength(ev.sse);
    for (const ws of t.sockets) {
      if (ws.bufferedAmount > limit) ws.close(1013, 'overflow');
      else if (ws.readyState === WebSocket.OPEN) ws.send(text);
    }
    for (const res of t.streams) {
      if (res.writableLength > limit) endStream(res, 'overflow');
      else res.write(ev.sse);
    }
    // Parked long polls answer after the current burst (the ticker publishes an overdue run in
    // one loop), so each answer carries the whole run, as servers/long_poll.py's does.
    if (t.waiters.size && !t.wakePending) {
      t.wakePending = true;
      queueMicrotask(() => {
        t.wakePending = false;
        t.wakeAll();
      });
    }
    return ev;
  }
  kick(name) {
    let n = 0;
    for (const t of this.topics.values()) {
      if (name !== null && t.name !== name) continue;
      for (const ws of t.sockets) { ws.close(1012, 'kicked'); n++; }
      for (const res of t.streams) { endStream(res, 'kicked'); n++; }
    }
    return n;
  }
  // Server shutdown: every parked long poll answers 204 at once, as servers/long_poll.py.
  drain() {
    let n = 0;
    for (const t of this.topics.values()) n += t.wakeAll();
    return n;
  }
  stats() {
    let subscribers = 0;
    let parked = 0;
    for (const t of this.topics.values()) {
      subscribers += t.sockets.size + t.streams.size;
      parked += t.waiters.size;
    }
    return {
      backend: 'node', topics: this.topics.size, published: this.published, subscribers, parked,
    };
  }
}

// --- input checks (the contract's 400s) ----------------------------------------------------
class BadInput extends Error {
  constructor(code, detail) { super(detail); this.code = code; }
}
function checkTopic(topic) {
  if (typeof topic !== 'string' || !TOPIC_RE.test(topic)) {
    throw new BadInput('bad_topic', `topic must match ${TOPIC_RE.source}`);
  }
  return topic;
}
function parseCursor(value, name = 'since') {
  if (value === undefined || value === null) return null;
  const text = String(value).trim();
  if (!/^[0-9]+$/.test(text) || BigInt(text) > MAX_SEQ) {
    throw new BadInput('bad_cursor', `${name} must be a non-negative integer`);
  }
  return Number(text);
}
const errorBody = (code, detail) => JSON.stringify({ error: code, detail });
const noTicker = (res) => res.status(404).type('json')
  .send(errorBody('no_ticker', 'the server runs without a ticker'));
// A query number as FastAPI's Query(ge=0[, le=max]) parses it (pydantic's lax str -> float/int:
// underscores between digits, "1.0" as an integer, inf/nan failing the bounds): absent -> null,
// else {value}, or {error} with the {loc, msg} of its 422 detail.
const DIGITS = String.raw`\d(?:_?\d)*`;
const INT_RE = new RegExp(`^[+-]?${DIGITS}(?:\\.0+)?$`);
const FLOAT_RE = new RegExp(
  `^[+-]?(?:${DIGITS}(?:\\.(?:${DIGITS})?)?|\\.${DIGITS})(?:[eE][+-]?${DIGITS})?$`);
const SPECIAL_RE = /^([+-]?)(inf|infinity|nan)$/i;
const PY_INT_RE = new RegExp(`^[+-]?${DIGITS}$`);
// The number in `text` (an integer by `intRe`, else a float with inf/nan), or undefined.
function lexNumber(text, intRe) {
  const special = intRe ? null : SPECIAL_RE.exec(text);
  if (special) {
    if (special[2].toLowerCase() === 'nan') return NaN;
    return special[1] === '-' ? -Infinity : Infinity;
  }
  return (intRe || FLOAT_RE).test(text) ? Number(text.replace(/_/g, '')) : undefined;
}
function queryNumber(req, name, integer, max) {
  const raw = req.query[name];
  if (raw === undefined) return { value: null };
  const text = (Array.isArray(raw) ? raw[raw.length - 1] : String(raw)).trim();
  const loc = ['query', name];
  const value = lexNumber(text, integer ? INT_RE : null);
  if (value === undefined) {
    const what = integer ? 'a valid integer, unable to parse string as an integer'
      : 'a valid number, unable to parse string as a number';
    return { error: { loc, msg: `Input should be ${what}` } };
  }
  if (value < 0) return { error: { loc, msg: 'Input should be greater than or equal to 0' } };
  if (!(value <= max)) return { error: { loc, msg: `Input should be less than or equal to ${max}` } };
  return { value };
}
function query(req) {
  return new URL(req.url, 'http://localhost').searchParams;
}
function parseSubscribe(req) {
  const q = query(req);
  const topic = checkTopic(q.get('topic'));
  const lastId = req.headers['last-event-id'];
  const since = lastId ? parseCursor(lastId, 'Last-Event-ID') : parseCursor(q.get('since'));
  return { topic, since };
}

// --- SSE, plain Node http ------------------------------------------------------------------
function endStream(res, reason) {
  res.end(`event: end\ndata: {"type":"end","reason":"${reason}"}\n\n`);
}
function serveSSE(feed, req, res) {
  let sub;
  try {
    sub = parseSubscribe(req);
  } catch (err) {
    res.writeHead(400, { 'content-type': 'application/json' }).end(errorBody(err.code, err.message));
    return;
  }
  const t = feed.topic(sub.topic);
  const [cursor, gap] = t.resolve(sub.since);
  // HTTP/2 streams share a socket node:http2 owns (and sets no-delay on); it refuses changes.
  if (req.httpVersionMajor < 2) res.socket.setNoDelay(true);
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
  });
  let head = `retry: ${feed.opts['retry-ms']}\n\n`;
  if (gap) head += `event: gap\ndata: ${JSON.stringify(gap)}\n\n`;
  head += `id: ${cursor}\nevent: ready\ndata: ${JSON.stringify({ type: 'ready', topic: t.name, cursor })}\n\n`;
  res.write(head + t.after(cursor).map((e) => e.sse).join(''));
  t.streams.add(res);
  const ping = setInterval(
    () => res.write(`: ping - ${new Date().toISOString()}\n\n`),
    feed.opts['keepalive-s'] * 1000,
  );
  const done = () => { clearInterval(ping); t.streams.delete(res); };
  res.on('close', done);
  res.on('error', done);
}

// --- short and long polling, plain Node http ---------------------------------------------
// The body of servers/short_poll.py batch_body: each event's JSON spliced in, never re-encoded.
function pollBody(t, batch) {
  const events = batch.events.map((e) => e.text).join(',');
  const gap = batch.gap ? JSON.stringify(batch.gap) : 'null';
  return `{"topic":${JSON.stringify(t.name)},"events":[${events}],"cursor":${batch.cursor},` +
    `"more":${batch.more},"last_seq":${t.last},"recovered":${batch.gap ? 'false' : 'true'},` +
    `"gap":${gap}}`;
}
function sendJSON(res, status, body, headers = {}) {
  res.writeHead(status, {
    'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers,
  }).end(body);
}
const invalid = (res, name, msg) => sendJSON(res, 422,
  errorBody('invalid_parameter', [{ loc: ['query', name], msg }]));
// servers/query.py optional_int(ge=1) and optional_positive_float: [value or null, error or null].
function positiveParam(q, name, integer) {
  const raw = q.get(name);
  if (raw === null) return [null, null];
  // Python's int() and float(), as servers/query.py: no "1.0" for an integer.
  const value = lexNumber(raw.trim(), integer ? PY_INT_RE : null);
  if (value === undefined) return [null, `Input should be a valid ${integer ? 'integer' : 'number'}`];
  if (integer && value < 1) return [null, 'Input should be greater than or equal to 1'];
  if (!integer && !(value > 0)) return [null, 'Input should be greater than 0'];
  return [value, null];
}
function parsePoll(req, res, extra) {
  const q = query(req);
  let topic;
  let since;
  try {
    if (q.get('topic') === null) { invalid(res, 'topic', 'Field required'); return null; }
    topic = checkTopic(q.get('topic'));
    since = parseCursor(q.get('since') ?? undefined);
  } catch (err) {
    sendJSON(res, 400, errorBody(err.code, err.message));
    return null;
  }
  const [value, error] = positiveParam(q, extra, extra === 'limit');
  if (error) { invalid(res, extra, error); return null; }
  return { topic, since, value };
}
function servePoll(feed, req, res) {
  const p = parsePoll(req, res, 'limit');
  if (!p) return;
  const cap = Math.min(p.value ?? feed.opts['poll-batch'], feed.opts['poll-batch']);
  const t = feed.topic(p.topic);
  sendJSON(res, 200, pollBody(t, t.read(p.since, cap)));
}
function serveLongPoll(feed, req, res) {
  const p = parsePoll(req, res, 'timeout');
  if (!p) return;
  const opts = feed.opts;
  const waitS = Math.min(p.value ?? opts['long-poll-timeout-s'], opts['long-poll-max-timeout-s']);
  const t = feed.topic(p.topic);
  const batch = t.read(p.since, opts['poll-batch']);
  if (batch.events.length || batch.gap) {
    sendJSON(res, 200, pollBody(t, batch));
    return;
  }
  let timer = null;
  const answer = () => {
    clearTimeout(timer);
    t.waiters.delete(answer);
    res.off('close', gone);
    const next = t.read(batch.cursor, opts['poll-batch']);
    if (next.events.length) sendJSON(res, 200, pollBody(t, next));
    else res.writeHead(204, { 'pushlab-cursor': String(next.cursor) }).end();
  };
  const gone = () => { clearTimeout(timer); t.waiters.delete(answer); };
  timer = setTimeout(answer, waitS * 1000);
  t.waiters.add(answer);
  res.on('close', gone);
}

// --- WebSocket, ws -------------------------------------------------------------------------
function serveWS(feed, wss, req, socket, head) {
  let sub;
  try {
    sub = parseSubscribe(req);
  } catch (err) {
    const body = errorBody(err.code, err.message);
    socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    const t = feed.topic(sub.topic);
    const [cursor, gap] = t.resolve(sub.since);
    let bad = 0;
    ws.on('error', (err) => { console.error(`ws error: ${err.message}`); ws.terminate(); });
    ws.on('close', () => t.sockets.delete(ws));
    ws.on('message', (data, isBinary) => {
      const reply = handleFrame(feed, t.name, data, isBinary);
      if (reply.type === 'error' && ++bad >= MAX_BAD_FRAMES) {
        ws.close(1008, 'too many bad messages');
        return;
      }
      ws.send(JSON.stringify(reply));
    });
    if (gap) ws.send(JSON.stringify(gap));
    ws.send(JSON.stringify({ type: 'ready', topic: t.name, cursor }));
    for (const ev of t.after(cursor)) ws.send(ev.text);
    t.sockets.add(ws);
  });
}
function handleFrame(feed, topic, data, isBinary) {
  if (isBinary) return { type: 'error', error: 'unsupported', detail: 'binary frames are not accepted' };
  let obj;
  try {
    obj = JSON.parse(data.toString());
  } catch {
    return { type: 'error', error: 'invalid_json', detail: 'frame is not JSON' };
  }
  const kind = obj !== null && typeof obj === 'object' ? obj.type : undefined;
  if (kind === 'ping') return { type: 'pong', id: obj.id ?? null };
  if (kind === 'publish' && 'data' in obj) {
    const ev = feed.publish(topic, JSON.stringify(obj.data));
    return { type: 'published', seq: ev.seq, id: obj.id ?? null };
  }
  return { type: 'error', error: 'unknown_message', detail: 'expected type ping or publish' };
}

// --- Express: publish, health, admin -------------------------------------------------------
function makeApp(feed, ticker) {
  const app = express();
  app.post('/publish', express.text({ type: () => true, limit: MAX_BODY }), (req, res) => {
    let topic;
    try {
      topic = checkTopic(req.query.topic);
    } catch (err) {
      res.status(400).type('json').send(errorBody(err.code, err.message));
      return;
    }
    let dataJson;
    try {
      dataJson = JSON.stringify(JSON.parse(typeof req.body === 'string' ? req.body : ''));
    } catch {
      res.status(400).type('json').send(errorBody('invalid_json', 'body is not valid JSON'));
      return;
    }
    const ev = feed.publish(topic, dataJson);
    res.type('json').send(`{"topic":${JSON.stringify(topic)},"seq":${ev.seq},"ts_ns":${ev.ts}}`);
  });
  app.get('/healthz', (req, res) => res.json({ status: 'ok', broker: feed.stats() }));
  app.post('/admin/kick', (req, res) => res.json({ kicked: feed.kick(req.query.topic ?? null) }));
  app.get('/admin/ticker', (req, res) => {
    if (!ticker.present) return noTicker(res);
    res.json(ticker.state());
  });
  app.post('/admin/ticker', (req, res) => {
    // Same checks, order and answers as servers/demos/pages.py: parameters (422), ticker (404), size (413).
    const rate = queryNumber(req, 'rate', false, MAX_TICKER_RATE);
    const size = queryNumber(req, 'size', true, Infinity);
    const bad = [rate, size].filter((p) => p.error);
    if (bad.length) {
      res.status(422).type('json').send(errorBody('invalid_parameter', bad.map((p) => p.error)));
      return;
    }
    if (!ticker.present) return noTicker(res);
    if (size.value !== null && size.value > MAX_BODY) {
      res.status(413).type('json')
        .send(errorBody('payload_too_large', `size must be <= max_publish_bytes (${MAX_BODY})`));
      return;
    }
    ticker.update(rate.value, size.value);
    res.json(ticker.state());
  });
  app.use((err, req, res, _next) => {
    const tooBig = err.type === 'entity.too.large';
    res.status(tooBig ? 413 : 400).type('json')
      .send(errorBody(tooBig ? 'payload_too_large' : 'bad_request', err.message));
  });
  return app;
}

// --- ticker: absolute schedule, like feed/ticker.py (never slowed by subscribers) ----------
// Rate and size are live state (POST /admin/ticker), like feed/ticker.py TickerControl: any
// change restarts the schedule from now (tick numbers from 1), rate 0 pauses. A server started
// with rate 0 has no ticker at all, as the Python server.
class Ticker {
  constructor(feed, opts) {
    this.feed = feed;
    this.topic = opts.topic;
    this.rate = opts.rate;
    this.size = opts.size;
    this.present = opts.rate > 0;
    this.timer = null;
  }
  state() { return { topic: this.topic, rate: this.rate, size: this.size }; }
  start() {
    this.stop();
    if (!(this.rate > 0)) return;
    const period = 1000 / this.rate;
    const start = performance.now();
    let i = 0;
    const tick = () => {
      const due = Math.floor((performance.now() - start) / period) + 1;
      const burstEnd = Math.min(due, i + 1000);
      while (i < burstEnd) {
        i += 1;
        this.feed.publish(this.topic, makePayload(i, this.size));
      }
      this.timer = setTimeout(tick, Math.max(0, start + i * period - performance.now()));
    };
    tick();
  }
  stop() {
    clearTimeout(this.timer);
    this.timer = null;
  }
  update(rate, size) {
    if (rate !== null) this.rate = rate;
    if (size !== null) this.size = size;
    // Synchronous: when the answer leaves, a paused ticker has published its last event.
    this.start();
  }
}

function createServer(opts, handler) {
  if (!opts['tls-cert']) return http.createServer({ noDelay: true }, handler);
  const tls = { cert: fs.readFileSync(opts['tls-cert']), key: fs.readFileSync(opts['tls-key']) };
  if (Number(opts.http2)) return http2.createSecureServer({ ...tls, allowHTTP1: true }, handler);
  return https.createServer({ ...tls, noDelay: true }, handler);
}

const HTTP_ROUTES = { '/sse': serveSSE, '/poll': servePoll, '/long-poll': serveLongPoll };

function main() {
  const opts = parseArgs(process.argv.slice(2));
  checkTopic(opts.topic);
  const feed = new Feed(opts);
  const ticker = new Ticker(feed, opts);
  const app = makeApp(feed, ticker);
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY, perMessageDeflate: false });
  wss.on('error', (err) => console.error(`wss error: ${err.message}`));
  const handler = (req, res) => {
    const route = req.method === 'GET' ? HTTP_ROUTES[req.url.split('?')[0]] : undefined;
    if (route) route(feed, req, res);
    else app(req, res);
  };
  const server = createServer(opts, handler);
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    if (req.url.split('?')[0] === '/ws') serveWS(feed, wss, req, socket, head);
    else socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  });
  server.listen(opts.port, opts.host, () => {
    const { port } = server.address();
    const scheme = opts['tls-cert'] ? 'https' : 'http';
    console.log(`pushlab node baseline listening on ${scheme}://${opts.host}:${port}`);
    ticker.start();
  });
  const shutdown = () => {
    ticker.stop();
    for (const t of feed.topics.values()) {
      for (const ws of t.sockets) ws.close(1001, 'shutdown');
      for (const res of t.streams) endStream(res, 'shutdown');
    }
    feed.drain();
    server.close(() => process.exit(0)); // Node >= 19 also closes idle keep-alive sockets
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main();
