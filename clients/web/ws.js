// WebSocket: WS /ws?topic=T&since=N; one text frame per event, control frames have a `type`.
// A token rides in Sec-WebSocket-Protocol (browsers cannot set headers on the upgrade):
// ["pushlab.v1", "bearer.<token>"]; the server answers with "pushlab.v1".
import { FatalError, FeedClient } from "./feed-client.js";

const FATAL_CLOSE = new Set([1002, 1003, 1007, 1008, 1009, 4029]);

export class WebSocketClient extends FeedClient {
  connectOnce(signal, opened) {
    return new Promise((resolve, reject) => {
      const url = `${this.baseUrl.replace(/^http/, "ws") || wsOrigin()}/ws?${this._query()}`;
      const ws = this.token
        ? new WebSocket(url, ["pushlab.v1", `bearer.${this.token}`])
        : new WebSocket(url);
      this.counters.requests += 1;
      signal.addEventListener("abort", () => ws.close(4000, "dropped by the client"), { once: true });
      ws.onopen = () => opened();
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
