// The whiteboard's connection: WebSocket both ways, or SSE down + POST up (?transport=sse).
// Either way it resumes from the board's last seq after a cut (the server replays the
// operations after it, or sends a snapshot when they are gone) and retries with full jitter.
import { backoffDelay, sleep } from "./feed-client.js";

const FATAL_CLOSE = new Set([1008, 1009]);

export class BoardClient extends EventTarget {
  // token: with auth on, the server takes the user from it (a different `user` is refused 403).
  constructor({ board, user, token = null, transport = "ws", baseMs = 100, capMs = 5000 }) {
    super();
    Object.assign(this, { board, user, token, transport, retry: { baseMs, capMs } });
    this.seq = null;      // the last operation applied: the resume cursor
    this.state = "idle";
    this.reconnects = 0;
    this._send = null;
    this._abort = null;
  }

  start() {
    this.running = true;
    this._loop();
    return this;
  }

  /** Cut the connection (tests and the curious): the client reconnects and catches up. */
  drop() {
    this._abort?.abort();
  }

  /** Send one client frame; resolves to an error object when the server refused it. */
  async send(frame) {
    if (!this._send) return { error: "not_connected" };
    return this._send(frame);
  }

  _query() {
    const q = new URLSearchParams({ board: this.board, user: this.user });
    if (this.seq !== null) q.set("since", String(this.seq));
    return q;
  }

  _tokenQuery() {
    return this.token ? `&${new URLSearchParams({ token: this.token })}` : "";
  }

  _setState(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }

  _frame(msg) {
    if (msg.seq !== undefined && ["stroke", "undo", "clear"].includes(msg.type)) {
      if (this.seq !== null && msg.seq <= this.seq) return; // replayed twice: already applied
      this.seq = msg.seq;
    } else if (msg.type === "snapshot") {
      this.seq = msg.seq;
    }
    this.dispatchEvent(new CustomEvent("frame", { detail: msg }));
  }

  async _loop() {
    let attempt = 0;
    let opened = false;
    while (this.running) {
      this._abort = new AbortController();
      this._setState(opened ? "recovering" : "connecting");
      try {
        const connect = this.transport === "sse" ? this._sse : this._ws;
        await connect.call(this, this._abort.signal, () => {
          if (opened) this.reconnects += 1;
          opened = true;
          attempt = 0;
          this._setState("open");
        });
      } catch (err) {
        this._setState("failed");
        this.dispatchEvent(new CustomEvent("frame", { detail: { type: "error", error: "closed", detail: String(err.message) } }));
        return;
      }
      this._send = null;
      if (!this.running) return;
      this._setState("recovering");
      await sleep(backoffDelay(attempt++, this.retry));
    }
  }

  _ws(signal, opened) {
    return new Promise((resolve, reject) => {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      // A browser cannot set headers on the upgrade: the token rides as a subprotocol.
      const protocols = this.token ? ["pushlab.v1", `bearer.${this.token}`] : [];
      const ws = new WebSocket(`${scheme}://${location.host}/whiteboard/ws?${this._query()}`, protocols);
      signal.addEventListener("abort", () => ws.close(4000, "dropped"), { once: true });
      ws.onopen = () => {
        this._send = async (frame) => { ws.send(JSON.stringify(frame)); return null; };
        opened();
      };
      ws.onmessage = (e) => this._frame(JSON.parse(e.data));
      ws.onclose = (e) => (FATAL_CLOSE.has(e.code) ? reject(new Error(`closed ${e.code} ${e.reason}`)) : resolve());
    });
  }

  _sse(signal, opened) {
    return new Promise((resolve) => {
      const es = new EventSource(`/whiteboard/sse?${this._query()}${this._tokenQuery()}`);
      const finish = () => { es.close(); resolve(); };
      signal.addEventListener("abort", finish, { once: true });
      const post = `/whiteboard/send?${new URLSearchParams({ board: this.board, user: this.user })}`;
      this._send = async (frame) => {
        const headers = { "Content-Type": "application/json" };
        if (this.token) headers.Authorization = `Bearer ${this.token}`;
        const res = await fetch(post, { method: "POST", body: JSON.stringify(frame), headers });
        if (res.ok) return null;
        const body = await res.json().catch(() => ({ error: `http_${res.status}` }));
        this._frame({ type: "error", ...body });
        return body;
      };
      es.onopen = () => opened();
      es.onmessage = (e) => this._frame(JSON.parse(e.data));
      es.addEventListener("end", finish);
      // EventSource reconnects by itself with Last-Event-ID; count it as a recovery.
      es.onerror = () => (es.readyState === EventSource.CLOSED ? finish() : this._setState("recovering"));
    });
  }
}
