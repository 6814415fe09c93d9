// Server-Sent Events through the browser's own EventSource.
//
// EventSource reconnects by itself after the server's `retry:` and sends Last-Event-ID (the
// last `id:` it saw, which the server's `ready` event sets from the first moment), so a server
// restart is survived without us. We only step in when it gives up (readyState CLOSED: an HTTP
// error or a wrong content type) or when the lab's "drop" button closes it: then our backoff
// loop opens a new one with ?since=<last seq>. EventSource cannot send headers: a token goes
// in ?token=.
import { FatalError, FeedClient } from "./feed-client.js";

export class SSEClient extends FeedClient {
  connectOnce(signal, opened) {
    return new Promise((resolve, reject) => {
      const extra = this.token ? { token: this.token } : {};
      const es = new EventSource(`${this.baseUrl}/sse?${this._query(extra)}`);
      this.counters.requests += 1;
      const finish = (err) => { es.close(); err ? reject(err) : resolve(); };
      signal.addEventListener("abort", () => finish(), { once: true });
      es.onopen = () => opened();
      es.addEventListener("ready", (e) => this._ready(JSON.parse(e.data).cursor));
      es.addEventListener("gap", (e) => this._gap(JSON.parse(e.data)));
      // The server ended the stream (kicked, overflow, shutdown): EventSource will reconnect.
      es.addEventListener("end", () => { this._dropped = true; this._setState("recovering"); });
      es.onmessage = (e) => {
        // Payload bytes: the data line plus its id line and framing (SSE frames are ASCII here).
        this._accept(JSON.parse(e.data), e.data.length + e.lastEventId.length + 13);
      };
      es.onerror = () => {
        if (es.readyState === EventSource.CLOSED) {
          // Given up for good by the browser: 4xx is fatal for us too, anything else retried.
          finish(this.state === "connecting" && !this._dropped
            ? new FatalError("EventSource refused") : undefined);
        } else {
          this._dropped = true; // the browser is reconnecting on its own
          this._setState("recovering");
        }
      };
    });
  }
}
