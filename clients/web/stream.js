// HTTP streaming: fetch(GET /stream) and its body's ReadableStream, one JSON object per line
// (application/x-ndjson): `ready`, `gap`, `heartbeat` and `end` lines have a `type`, events do not.
//
// What EventSource did for SSE is ours to do here: nothing reconnects by itself and nothing
// remembers a Last-Event-ID, so when the body ends (the server's `end` line, a drop, a restart)
// the backoff loop of FeedClient fetches again and this client sends the last seq in the
// Pushlab-Cursor header. In exchange fetch can send headers (the token goes in Authorization,
// not the URL), read any status and body, and use any method. Silence longer than `silenceMs`
// (the server sends a heartbeat line every keepalive_s, 15 s by default) counts as a dead
// connection.
import { FatalError, FeedClient, retryableStatus } from "./feed-client.js";

export class StreamClient extends FeedClient {
  constructor(baseUrl, topic, options = {}) {
    super(baseUrl, topic, options);
    this.silenceMs = options.silenceMs ?? 45000;
  }

  async connectOnce(signal, opened) {
    // Our own controller: aborted by the loop's signal (drop, stop) or by the silence timer.
    const abort = new AbortController();
    signal.addEventListener("abort", () => abort.abort(), { once: true });
    let timer = null;
    const heard = () => {
      clearTimeout(timer);
      timer = setTimeout(() => abort.abort(), this.silenceMs);
    };
    const headers = { ...this._headers(), Accept: "application/x-ndjson" };
    if (this.lastSeq !== null) headers["Pushlab-Cursor"] = String(this.lastSeq);
    this.counters.requests += 1;
    try {
      heard();
      const res = await fetch(`${this.baseUrl}/stream?${this._query()}`, {
        headers, signal: abort.signal, cache: "no-store",
      });
      if (!res.ok) {
        const msg = `/stream answered ${res.status}: ${(await res.text()).slice(0, 200)}`;
        throw retryableStatus(res.status) ? new Error(msg) : new FatalError(msg);
      }
      opened();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let tail = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        heard();
        const lines = (tail + value).split("\n");
        tail = lines.pop();
        for (const line of lines) {
          if (line.trim() && this._line(line) === "end") {
            reader.cancel().catch(() => {});
            return;
          }
        }
      }
    } catch (err) {
      if (abort.signal.aborted && !(err instanceof FatalError)) return; // drop, stop, silence
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** One line; "end" when the server said goodbye (the loop reconnects and resumes). */
  _line(line) {
    const msg = JSON.parse(line);
    if (msg.type === undefined) this._accept(msg, line.length + 1);
    else if (msg.type === "ready") this._ready(msg.cursor);
    else if (msg.type === "gap") this._gap(msg);
    else if (msg.type === "end") return "end";
    // "heartbeat": only proof of life (heard() above); unknown types are ignored.
    return null;
  }
}
