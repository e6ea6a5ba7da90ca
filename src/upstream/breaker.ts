// A circuit breaker per upstream: after consecutive failures it stops sending requests for a cool-down, so
// that requests the cache can answer do not each wait for a connect timeout first. It counts what says the
// host is in trouble (no answer, or 502/503/504 from it); a 500 for one repository's path says only that this
// repository is, so each repository counts once, and clients cannot open it for everyone (issue 14, finding 5).
import type { Metrics } from '../metrics/metrics.js';
import { UpstreamError } from './errors.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

export class CircuitBreaker {
  private failures = 0;
  private openUntil = 0;
  private trial = false;
  /** Repositories whose 5xx counted since the last success: a repository's next ones add nothing. */
  private readonly failedRepositories = new Set<string>();

  constructor(
    private readonly threshold: number,
    private readonly cooldownMs: number,
    private readonly metrics: Metrics,
    private readonly now: () => number = Date.now,
    private readonly registry = 'docker.io',
  ) {}

  get state(): BreakerState {
    if (this.failures < this.threshold) return 'closed';
    return this.now() < this.openUntil ? 'open' : 'half-open';
  }

  /** Throws while open; in half-open, lets one request through to test upstream. True for that trial request. */
  check(): boolean {
    const state = this.state;
    if (state === 'closed') return false;
    if (state === 'half-open' && !this.trial) {
      this.trial = true;
      return true;
    }
    throw new UpstreamError('upstream circuit open after repeated failures', {
      retryAfterSeconds: Math.max(1, Math.ceil((this.openUntil - this.now()) / 1000)),
    });
  }

  success(): void {
    this.failures = 0;
    this.failedRepositories.clear();
    this.trial = false;
    this.metrics.breakerOpen.set({ registry: this.registry }, 0);
  }

  /** The trial told nothing about upstream (its client went away): another request may be the trial. */
  release(): void {
    this.trial = false;
  }

  /**
   * A failure: of the host (no repository given), or a 5xx for one repository, which counts only the first
   * time that repository fails since the last success.
   */
  failure(repository?: string): void {
    if (repository !== undefined) {
      if (this.failedRepositories.has(repository)) {
        this.release();
        return;
      }
      // Bounded: once the threshold is reached the breaker is open and nothing more needs remembering.
      if (this.failedRepositories.size < this.threshold) this.failedRepositories.add(repository);
    }
    this.failures++;
    this.trial = false;
    if (this.failures >= this.threshold) {
      this.openUntil = this.now() + this.cooldownMs;
      this.metrics.breakerOpen.set({ registry: this.registry }, 1);
    }
  }
}
