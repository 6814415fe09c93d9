// The part every browser feed client shares: resume cursor, dedupe, gap handling, backoff loop,
// counters. One subclass per transport supplies connectOnce(). No dependencies, no build step.
// The wire contract is docs/protocol.md; the Python twin is clients/base.py.

/** Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^attempt)]. */
export function backoffDelay(attempt, { baseMs = 100, capMs = 10000 } = {}) {
  return Math.random() * Math.min(capMs, baseMs * 2 ** attempt);
}

/** Resolve after `ms`, or at once when `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/** Browser receive time in ms since the epoch, comparable with the server's ts_ns / 1e6. */
export function nowMs() {
  return performance.timeOrigin + performance.now();
}

/** A failure retrying cannot fix (4xx, policy close): the client stops. */
export class FatalError extends Error {}

/** HTTP statuses worth retrying; every other 4xx is fatal (as in clients/retry.py). */
export function retryableStatus(status) {
  return status >= 500 || status === 408 || status === 425 || status === 429;
}

export class FeedClient extends EventTarget {
  /**
   * @param {string} baseUrl  origin of the pushlab server, e.g. "" for this page's origin
   * @param {string} topic
   * @param {{since?: number|null, token?: string|null, baseMs?: number, capMs?: number}} options
   */
  constructor(baseUrl, topic, { since = null, token = null, baseMs = 100, capMs = 10000 } = {}) {
    super();
    this.baseUrl = baseUrl;
    this.topic = topic;
    this.token = token;
    this.retry = { baseMs, capMs };
    this.lastSeq = since;   // resume cursor: the seq of the last event taken
    this.firstSeq = null;   // first event seen: with lastSeq and the count it proves "no loss"
    this.state = "idle";    // idle | connecting | open | recovering | failed | stopped
    this.running = false;
    this.counters = {
      events: 0, duplicates: 0, reconnects: 0, gaps: 0, silentGaps: 0, lost: 0,
      payloadBytes: 0, wireBytes: 0, requests: 0, connections: 0,
    };
    this._dropped = false;
    this._abort = null;
  }

  /** True while every seq from the first seen to lastSeq arrived exactly once. */
  get contiguous() {
    const c = this.counters;
    if (this.firstSeq === null) return true;
    return c.gaps === 0 && c.silentGaps === 0 && c.events === this.lastSeq - this.firstSeq + 1;
  }

  start() {
    if (this.running) return this;
    this.running = true;
    this._loop();
    return this;
  }

  stop() {
    this.running = false;
    this._abort?.abort();
    this._setState("stopped");
  }

  /** Cut the current connection (lab button): the loop reconnects with backoff and resumes. */
  drop() {
    this._abort?.abort();
  }

  async _loop() {
    let attempt = 0;
    while (this.running) {
      this._abort = new AbortController();
      this._setState(this._dropped ? "recovering" : "connecting");
      try {
        await this.connectOnce(this._abort.signal, () => { attempt = 0; this._opened(); });
      } catch (err) {
        if (err instanceof FatalError) {
          this.running = false;
          this._setState("failed");
          this.dispatchEvent(new CustomEvent("fatal", { detail: String(err.message) }));
          return;
        }
      }
      if (!this.running) return;
      this._dropped = true;
      this._setState("recovering");
      await sleep(backoffDelay(attempt++, this.retry));
    }
  }

  /** A connection (or, for polling, a request after a failure) succeeded. */
  _opened() {
    this.counters.connections += 1;
    if (this._dropped) {
      this.counters.reconnects += 1;
      this._dropped = false;
    }
    this._setState("open");
  }

  _setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }

  /** The server's `ready` (or a poll's cursor): where the stream starts. */
  _ready(cursor) {
    if (this.lastSeq === null) this.lastSeq = cursor;
  }

  /** Take one event: drop duplicates, count unannounced jumps, then tell listeners. */
  _accept(event, nbytes) {
    const recvMs = nowMs();
    this.counters.payloadBytes += nbytes;
    if (this.lastSeq !== null && event.seq <= this.lastSeq) {
      this.counters.duplicates += 1;
      return;
    }
    if (this.lastSeq !== null && event.seq > this.lastSeq + 1) {
      // The server promises never to skip silently: this is a bug, counted and shown.
      this.counters.silentGaps += 1;
      this.counters.lost += event.seq - this.lastSeq - 1;
    }
    if (this.firstSeq === null) this.firstSeq = event.seq;
    this.lastSeq = event.seq;
    this.counters.events += 1;
    this.dispatchEvent(new CustomEvent("event", { detail: { event, recvMs, nbytes } }));
  }

  /** The server could not honour the cursor (recovered=false): say so, resume after it. */
  _gap(gap) {
    this.counters.gaps += 1;
    if (gap.reason === "expired" && gap.oldest_seq !== null) {
      this.counters.lost += Math.max(0, gap.oldest_seq - 1 - gap.since);
    }
    this.lastSeq = gap.resume_after;
    this.dispatchEvent(new CustomEvent("gap", { detail: gap }));
  }

  _query(extra = {}) {
    const q = new URLSearchParams({ topic: this.topic });
    if (this.lastSeq !== null) q.set("since", String(this.lastSeq));
    for (const [k, v] of Object.entries(extra)) q.set(k, String(v));
    return q;
  }

  _headers() {
    return this.token ? { Authorization: `Bearer ${this.token}` } : {};
  }

  /** Subclasses: run one connection until it ends; call `opened()` once it works. */
  async connectOnce(signal, opened) {
    throw new Error("not implemented");
  }
}

const decoder = new TextDecoder();

/** One GET to a batch endpoint; returns [status, body|null, headers, bytes]. */
export async function fetchBatch(client, path, signal) {
  client.counters.requests += 1;
  const res = await fetch(`${client.baseUrl}${path}`, {
    headers: client._headers(), signal, cache: "no-store",
  });
  const buf = await res.arrayBuffer();
  if (res.status >= 400) {
    const msg = `${path.split("?")[0]} answered ${res.status}: ${decoder.decode(buf).slice(0, 200)}`;
    throw retryableStatus(res.status) ? new Error(msg) : new FatalError(msg);
  }
  const body = res.status === 200 ? JSON.parse(decoder.decode(buf)) : null;
  return [res.status, body, res.headers, buf.byteLength];
}

/** Apply a /poll or /long-poll batch body to the client. */
export function takeBatch(client, body, nbytes) {
  if (!body.recovered && body.gap) client._gap(body.gap);
  const each = body.events.length ? nbytes / body.events.length : 0;
  if (!body.events.length) client.counters.payloadBytes += nbytes;
  for (const event of body.events) client._accept(event, each);
  if (client.lastSeq === null || body.cursor > client.lastSeq) client.lastSeq = body.cursor;
}
