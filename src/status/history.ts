// The last hour of the status page's chart: every 10 s the request and byte counters are read, and what they
// grew by since the previous reading becomes one point of a ring of 360 (an hour). Counters, not a log of
// requests: the registry path only increments what it already did, and memory stays 360 points whatever the load.
import type { Totals } from './totals.js';

/** What the counters grew by over one interval, ending at `at`. */
export interface HistoryPoint {
  /** ms since epoch: the end of the interval. */
  at: number;
  /** Requests answered from cache, and those that needed upstream (misses and coalesced), in the interval. */
  hits: number;
  misses: number;
  /** Bytes sent to clients from cache files, and from downloads in progress, in the interval. */
  cacheBytes: number;
  upstreamBytes: number;
}

/** Starts a repeating call and returns how to stop it; tests pass one they fire by hand. */
export type Every = (ms: number, fn: () => void) => () => void;

export interface HistoryOptions {
  /** The counters now (the same ones /metrics shows). */
  read: () => Promise<Totals>;
  now?: () => number;
  every?: Every;
  intervalMs?: number;
  capacity?: number;
}

export const HISTORY_INTERVAL_MS = 10_000;
export const HISTORY_POINTS = 360;

const realEvery: Every = (ms, fn) => {
  const timer = setInterval(fn, ms);
  timer.unref();
  return () => clearInterval(timer);
};

export class History {
  readonly intervalMs: number;
  readonly capacity: number;
  private readonly ring: HistoryPoint[] = [];
  /** Where the next point goes once the ring is full (the oldest point). */
  private next = 0;
  private last: Totals | undefined;
  private stopTimer: (() => void) | undefined;
  private sampling: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly options: HistoryOptions) {
    this.intervalMs = options.intervalMs ?? HISTORY_INTERVAL_MS;
    this.capacity = options.capacity ?? HISTORY_POINTS;
    this.now = options.now ?? Date.now;
  }

  /** Takes the first reading (the baseline) and samples every interval from then on. */
  async start(): Promise<void> {
    await this.sample();
    this.stopTimer ??= (this.options.every ?? realEvery)(this.intervalMs, () => {
      // A failed reading is a gap in the chart; unhandled, it would end the mirror for the sake of a dashboard.
      this.sample().catch(() => undefined);
    });
  }

  stop(): void {
    this.stopTimer?.();
    this.stopTimer = undefined;
  }

  /** One reading: the growth since the previous one becomes a point (the first reading only sets the baseline). */
  sample(): Promise<void> {
    // A slow read must not overlap the next tick: one reading at a time, the tick in between is skipped.
    this.sampling ??= this.read().finally(() => (this.sampling = undefined));
    return this.sampling;
  }

  /** Oldest first. */
  points(): HistoryPoint[] {
    return [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
  }

  /** The sums over every point held (up to the last hour). */
  sums(): Omit<HistoryPoint, 'at'> & { seconds: number } {
    const sum = { hits: 0, misses: 0, cacheBytes: 0, upstreamBytes: 0, seconds: (this.ring.length * this.intervalMs) / 1000 };
    for (const p of this.ring) {
      sum.hits += p.hits;
      sum.misses += p.misses;
      sum.cacheBytes += p.cacheBytes;
      sum.upstreamBytes += p.upstreamBytes;
    }
    return sum;
  }

  private async read(): Promise<void> {
    const totals = await this.options.read();
    const previous = this.last;
    this.last = totals;
    if (!previous) return;
    this.push({
      at: this.now(),
      hits: totals.hits - previous.hits,
      misses: totals.misses - previous.misses,
      cacheBytes: totals.cacheBytes - previous.cacheBytes,
      upstreamBytes: totals.upstreamBytes - previous.upstreamBytes,
    });
  }

  private push(point: HistoryPoint): void {
    if (this.ring.length < this.capacity) {
      this.ring.push(point);
      return;
    }
    this.ring[this.next] = point;
    this.next = (this.next + 1) % this.capacity;
  }
}
