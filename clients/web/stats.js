// Sliding-window statistics for the dashboard: latency percentiles and events/s.

/** Nearest-rank percentile of a sorted array (q in [0, 1]). */
export function percentile(sorted, q) {
  if (!sorted.length) return NaN;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1];
}

export class SlidingWindow {
  /** `startMs`: when counting began (same clock as recvMs), so a young window is not over-rated. */
  constructor(windowMs = 10000, startMs = performance.timeOrigin + performance.now()) {
    this.windowMs = windowMs;
    this.startMs = startMs;
    this.samples = []; // [recvMs, latencyMs]
  }

  add(recvMs, latencyMs) {
    this.samples.push([recvMs, latencyMs]);
  }

  _prune(now) {
    const cut = now - this.windowMs;
    let i = 0;
    while (i < this.samples.length && this.samples[i][0] < cut) i++;
    if (i) this.samples.splice(0, i);
  }

  /** {p50, p99, rate, n} over the last windowMs (or since startMs while that is shorter). */
  summary(now) {
    this._prune(now);
    const lat = this.samples.map((s) => s[1]).sort((a, b) => a - b);
    // Dividing by the time since the first sample would over-rate a poller, whose first answer
    // brings a whole interval's worth of events at once.
    const span = Math.max(1000, Math.min(this.windowMs, now - this.startMs));
    return {
      p50: percentile(lat, 0.5),
      p99: percentile(lat, 0.99),
      rate: (this.samples.length * 1000) / span,
      n: lat.length,
    };
  }
}
