// Short polling: GET /poll?topic=T&since=N every `intervalMs`, at once again while `more`.
import { FeedClient, fetchBatch, sleep, takeBatch } from "./feed-client.js";

export class ShortPollClient extends FeedClient {
  constructor(baseUrl, topic, options = {}) {
    super(baseUrl, topic, options);
    this.intervalMs = options.intervalMs ?? 500;
  }

  async connectOnce(signal, opened) {
    let first = true;
    while (this.running && !signal.aborted) {
      const [, body, , nbytes] = await fetchBatch(this, `/poll?${this._query()}`, signal);
      if (first) { opened(); first = false; }
      takeBatch(this, body, nbytes);
      if (!body.more) await sleep(this.intervalMs, signal);
    }
  }
}
