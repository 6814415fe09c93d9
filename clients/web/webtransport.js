// WebTransport over HTTP/3: GET /webtransport names the server's UDP endpoint and the SHA-256 of
// its self-signed certificate, which the page pins with serverCertificateHashes (Chromium takes
// such a certificate only if it is ECDSA and valid <= 14 days; the server's is). The feed comes
// on one server-opened unidirectional stream as newline-delimited JSON: ready, gap, events, end
// (servers/webtransport/session.py); with `datagrams: true` events come as datagrams instead,
// and a lost one shows as a seq hole (counters.silentGaps / lost). A new session resumes with
// ?since=<last seq>. The token goes in ?token=: WebTransport cannot set request headers.
//
// A refused CONNECT (401, 403...) reaches the page only as "Opening handshake failed", the same
// as a network failure, so it is retried like one; a missing WebTransport server (404 on the
// info route) is fatal.
import { FatalError, FeedClient, retryableStatus } from "./feed-client.js";

export class WebTransportClient extends FeedClient {
  constructor(baseUrl, topic, options = {}) {
    super(baseUrl, topic, options);
    this.datagrams = Boolean(options.datagrams);
  }

  async connectOnce(signal, opened) {
    const res = await fetch(`${this.baseUrl}/webtransport`, { cache: "no-store", signal });
    if (res.status >= 400) {
      const msg = `/webtransport answered ${res.status}`;
      throw retryableStatus(res.status) ? new Error(msg) : new FatalError(msg);
    }
    const info = await res.json();
    const extra = {};
    if (this.token) extra.token = this.token;
    if (this.datagrams) extra.datagrams = 1;
    const wt = new WebTransport(`${info.url}?${this._query(extra)}`, {
      serverCertificateHashes: [{ algorithm: "sha-256", value: hexBytes(info.cert_sha256) }],
    });
    this.transport = wt;
    this.counters.requests += 1;
    const close = () => { try { wt.close({ closeCode: 0, reason: "client" }); } catch {} };
    signal.addEventListener("abort", close, { once: true });
    try {
      await wt.ready;
      opened();
      const streams = wt.incomingUnidirectionalStreams.getReader();
      const { value: stream, done } = await streams.read();
      if (done) return;
      // Datagrams that beat the ready line are held until it: the cursor is set first.
      const state = { held: this.datagrams ? [] : null };
      const datagrams = this.datagrams ? this._readDatagrams(wt, state) : null;
      await this._readLines(stream, state);
      datagrams?.catch(() => {});
    } catch (err) {
      if (signal.aborted) return;
      throw err;
    } finally {
      close();
    }
  }

  async _readLines(stream, state) {
    const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split("\n");
      buffer = lines.pop();
      for (const line of lines) {
        const msg = JSON.parse(line);
        if (msg.type === undefined) this._accept(msg, line.length);
        else if (msg.type === "ready") {
          this._ready(msg.cursor);
          for (const [event, n] of state.held ?? []) this._accept(event, n);
          state.held = null;
        } else if (msg.type === "gap") this._gap(msg);
        else if (msg.type === "end") return;
      }
    }
  }

  async _readDatagrams(wt, state) {
    const reader = wt.datagrams.readable.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const event = JSON.parse(decoder.decode(value));
      if (state.held) state.held.push([event, value.byteLength]);
      else this._accept(event, value.byteLength);
    }
  }
}

function hexBytes(hex) {
  return new Uint8Array(hex.match(/../g).map((h) => parseInt(h, 16)));
}
