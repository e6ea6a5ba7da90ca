// A fair share of the upstream pull allowance (issue 14): each client address may cause at most `pulls` upstream
// manifest GETs (what Docker Hub counts) per window, so one runaway CI job cannot spend the whole site's
// allowance. Over it: 429 with Retry-After; what is cached is still served to that client.
import { LRUCache } from 'lru-cache';
import { RegistryError } from '../registry/errors.js';

export interface PullBudgetConfig {
  pulls: number;
  /** Window length, ms. */
  window: number;
}

/** Addresses tracked at once; the least recently seen are forgotten first (bounded whatever clients do). */
const MAX_CLIENTS = 100_000;

export class PullBudget {
  private readonly spent = new LRUCache<string, { count: number; windowEnd: number }>({ max: MAX_CLIENTS });

  constructor(
    private readonly config: PullBudgetConfig,
    private readonly now: () => number = Date.now,
  ) {}

  /** Throws TOOMANYREQUESTS when `client` has no pull left in its window; else counts one. */
  take(client: string): void {
    const now = this.now();
    let entry = this.spent.get(client);
    if (!entry || entry.windowEnd <= now) {
      entry = { count: 0, windowEnd: now + this.config.window };
      this.spent.set(client, entry);
    }
    if (entry.count >= this.config.pulls) {
      const retryAfter = String(Math.max(1, Math.ceil((entry.windowEnd - now) / 1000)));
      throw new RegistryError('TOOMANYREQUESTS', "this client's share of the upstream pull allowance is spent", {
        headers: { 'retry-after': retryAfter },
        detail: { pulls: this.config.pulls, windowSeconds: Math.round(this.config.window / 1000) },
      });
    }
    entry.count++;
  }
}
