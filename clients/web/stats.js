// Sliding-window statistics for the dashboard: latency percentiles and events/s.

/** Nearest-rank percentile of a sorted array (q in [0, 1]). */
export function percentile(sorted, q) {
  if (!sorted.length) return NaN;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1];
}

export class SlidingWindow {
  constructor(windowMs = 10000) {
    this.windowMs = windowMs;
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

  /** {p50, p99, rate, n} over the last windowMs (rate over the covered span, at most the window). */
  summary(now) {
    this._prune(now);
    const lat = this.samples.map((s) => s[1]).sort((a, b) => a - b);
    const span = this.samples.length ? Math.max(1000, now - this.samples[0][0]) : this.windowMs;
    return {
      p50: percentile(lat, 0.5),
      p99: percentile(lat, 0.99),
      rate: (this.samples.length * 1000) / Math.min(this.windowMs, span),
      n: lat.length,
    };
  }
}
