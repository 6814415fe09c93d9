// WebSocket: WS /ws?topic=T&since=N; one text frame per event, control frames have a `type`.
// A token is the first message, {"type": "auth", "token": T}, not a handshake header: a browser
// never sees a refused handshake's HTTP status (a 401 before the upgrade reaches the page as close
// 1006, the same as a network failure, so the client would retry a bad token forever). After the
// upgrade the server's verdict is a close code the page can read: 1008 "unauthorized: ..." stops
// the client for good.
import { FatalError, FeedClient } from "./feed-client.js";

const FATAL_CLOSE = new Set([1002, 1003, 1007, 1008, 1009, 4029]);

export class WebSocketClient extends FeedClient {
  connectOnce(signal, opened) {
    return new Promise((resolve, reject) => {
      const url = `${this.baseUrl.replace(/^http/, "ws") || wsOrigin()}/ws?${this._query()}`;
      const ws = new WebSocket(url);
      this.counters.requests += 1;
      signal.addEventListener("abort", () => ws.close(4000, "dropped by the client"), { once: true });
      ws.onopen = () => {
        if (this.token) ws.send(JSON.stringify({ type: "auth", token: this.token }));
        opened();
      };
      ws.onmessage = (e) => {
        const msg = JSON.parse(e.data);
        if (msg.type === undefined) this._accept(msg, e.data.length);
        else if (msg.type === "ready") this._ready(msg.cursor);
        else if (msg.type === "gap") this._gap(msg);
        // The server's heartbeat: no pong within its timeout closes the socket with 1011.
        else if (msg.type === "ping") ws.send(JSON.stringify({ type: "pong", id: msg.id }));
      };
      ws.onclose = (e) => {
        if (FATAL_CLOSE.has(e.code)) reject(new FatalError(`closed ${e.code} ${e.reason}`));
        else resolve();
      };
    });
  }
}

function wsOrigin() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
}
