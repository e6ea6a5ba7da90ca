// Docker Hub's pull accounting, as upstream reports it in `ratelimit-limit: 100;w=21600`,
// `ratelimit-remaining: 76;w=21600` and `docker-ratelimit-source`. A pull is a manifest GET; HEADs are free.
import type { Logger } from 'pino';
import type { Metrics } from '../metrics/metrics.js';
import { MAX_RETRY_AFTER_SECONDS } from './response.js';

/** Docker Hub's window is 6 h; a longer one than a day is a broken header, not a policy (issue 14, finding 10). */
export const MAX_WINDOW_SECONDS = 24 * 3600;

export interface RateLimitState {
  limit: number | undefined;
  remaining: number | undefined;
  windowSeconds: number | undefined;
  /** When upstream last told us (ms since epoch). */
  observedAt: number;
}

/** `76;w=21600` → { value: 76, window: 21600 }. */
export function parseRateLimitHeader(value: string | string[] | undefined): { value: number; window?: number } | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  const match = /^\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+))?/.exec(text ?? '');
  if (!match) return undefined;
  return { value: Number(match[1]), ...(match[2] ? { window: Number(match[2]) } : {}) };
}

export class RateLimitTracker {
  private state: RateLimitState | undefined;
  /** Set by a 429: until then a manifest GET would only be refused again. */
  private limitedUntil = 0;
  private warned = false;
  private pulls = 0;

  constructor(
    private readonly reserve: number,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    /** The registry whose headers these are: the label of its rate-limit gauges. */
    private readonly registry = 'docker.io',
  ) {}

  /**
   * Reads the rate-limit headers of a manifest response (absent on registries other than Docker Hub); with the
   * request's method and the response's status, a GET answered 200 is counted as a pull spent.
   */
  observe(headers: Record<string, string | string[] | undefined>, exchange?: { method: string; status: number }): void {
    if (exchange?.method === 'GET' && exchange.status === 200) this.pulls++;
    const limit = parseRateLimitHeader(headers['ratelimit-limit']);
    const remaining = parseRateLimitHeader(headers['ratelimit-remaining']);
    if (!limit && !remaining) return;
    const announced = remaining?.window ?? limit?.window;
    const windowSeconds = announced === undefined ? undefined : Math.min(announced, MAX_WINDOW_SECONDS);
    this.state = { limit: limit?.value, remaining: remaining?.value, windowSeconds, observedAt: this.now() };
    if (limit) this.metrics.rateLimitLimit.set({ registry: this.registry }, limit.value);
    if (remaining) this.metrics.rateLimitRemaining.set({ registry: this.registry }, remaining.value);
    if (windowSeconds !== undefined) this.metrics.rateLimitWindow.set({ registry: this.registry }, windowSeconds);
    const source = headers['docker-ratelimit-source'];
    if (remaining && remaining.value <= this.reserve) {
      if (!this.warned) {
        this.log.warn({ remaining: remaining.value, reserve: this.reserve, windowSeconds, source }, 'upstream pull limit nearly spent: serving cached tags without revalidation');
      }
      this.warned = true;
    } else {
      this.warned = false;
    }
  }

  /** What upstream last reported (undefined until a response carried the headers), for the status page. */
  get current(): RateLimitState | undefined {
    return this.state;
  }

  /** Manifest GETs upstream answered with 200 since start: what Docker Hub counts as pulls. */
  get pullsSpent(): number {
    return this.pulls;
  }

  /** After a 429: remember for how long pulls are refused (an hour at most: then upstream is asked again). */
  limited(retryAfterSeconds: number | undefined): number {
    const seconds = Math.min(retryAfterSeconds ?? this.secondsToReset() ?? 60, MAX_RETRY_AFTER_SECONDS);
    this.limitedUntil = Math.max(this.limitedUntil, this.now() + seconds * 1000);
    return seconds;
  }

  /** Seconds until a manifest GET may succeed again, or 0. */
  limitedForSeconds(): number {
    return Math.max(0, Math.ceil((this.limitedUntil - this.now()) / 1000));
  }

  /** At or under the reserve, within the window upstream reported: spend pulls only on what is not cached. */
  conserving(): boolean {
    if (this.limitedForSeconds() > 0) return true;
    const state = this.state;
    if (state?.remaining === undefined || state.remaining > this.reserve) return false;
    const reset = this.secondsToReset();
    return reset === undefined || reset > 0;
  }

  private secondsToReset(): number | undefined {
    const state = this.state;
    if (state?.windowSeconds === undefined) return undefined;
    return Math.max(0, Math.ceil((state.observedAt + state.windowSeconds * 1000 - this.now()) / 1000));
  }
}
