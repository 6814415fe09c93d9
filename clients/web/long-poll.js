// Long polling: GET /long-poll?topic=T&since=N&timeout=S, held by the server until news;
// 204 + Pushlab-Cursor when nothing came in time. The next request goes out at once.
import { FeedClient, fetchBatch, takeBatch } from "./feed-client.js";

export class LongPollClient extends FeedClient {
  constructor(baseUrl, topic, options = {}) {
    super(baseUrl, topic, options);
    this.waitS = options.waitS ?? 20;
  }

  async connectOnce(signal, opened) {
    let first = true;
    while (this.running && !signal.aborted) {
      const path = `/long-poll?${this._query({ timeout: this.waitS })}`;
      const [status, body, headers, nbytes] = await fetchBatch(this, path, signal);
      if (first) { opened(); first = false; }
      if (status === 204) {
        const cursor = headers.get("Pushlab-Cursor");
        if (cursor !== null && this.lastSeq === null) this.lastSeq = Number(cursor);
        continue;
      }
      takeBatch(this, body, nbytes);
    }
  }
}
