// Owns: the bearer tokens an upstream client holds, bounded by count and by total token bytes (least recently
// used go first) and dropped once expired, so 40,000 distinct repository scopes cannot grow the heap without end
// (issue 14, finding 4: tokens of 2–8 KB each were kept forever).

interface Entry {
  token: string;
  expiresAt: number;
  bytes: number;
}

export interface TokenStoreLimits {
  /** Most tokens held at once. */
  maxEntries: number;
  /** Most token bytes (key + token, UTF-16 counted as 2 per unit) held at once. */
  maxBytes: number;
}

/** Enough for every repository a busy site pulls within a token lifetime (Docker Hub's is 5 min). */
export const DEFAULT_TOKEN_LIMITS: TokenStoreLimits = { maxEntries: 4096, maxBytes: 16 * 2 ** 20 };

/** A full sweep for expired tokens at most this often: each costs one pass over at most maxEntries. */
const SWEEP_INTERVAL_MS = 60_000;

export class TokenStore {
  /** Map iteration order is insertion order: re-inserting on use makes the first key the least recently used. */
  private readonly entries = new Map<string, Entry>();
  private totalBytes = 0;
  private lastSweep: number;

  constructor(
    private readonly limits: TokenStoreLimits,
    private readonly now: () => number,
  ) {
    this.lastSweep = now();
  }

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** A token still valid for key, or undefined (an expired one is dropped on the way). */
  get(key: string): string | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (entry.expiresAt <= this.now()) {
      this.totalBytes -= entry.bytes;
      return undefined;
    }
    this.entries.set(key, entry);
    return entry.token;
  }

  set(key: string, token: string, expiresAt: number): void {
    this.delete(key);
    const bytes = 2 * (key.length + token.length);
    // A token larger than the whole budget is used once and not kept.
    if (bytes > this.limits.maxBytes) return;
    this.entries.set(key, { token, expiresAt, bytes });
    this.totalBytes += bytes;
    this.sweepExpired();
    for (const [oldest, entry] of this.entries) {
      if (this.entries.size <= this.limits.maxEntries && this.totalBytes <= this.limits.maxBytes) break;
      this.entries.delete(oldest);
      this.totalBytes -= entry.bytes;
    }
  }

  delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.totalBytes -= entry.bytes;
  }

  private sweepExpired(): void {
    const now = this.now();
    if (now - this.lastSweep < SWEEP_INTERVAL_MS) return;
    this.lastSweep = now;
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt <= now) {
        this.entries.delete(key);
        this.totalBytes -= entry.bytes;
      }
    }
  }
}
