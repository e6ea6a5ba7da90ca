// The status snapshot behind `GET /api/v1/status` and the page: built from the running mirror's parts (counters,
// rate-limit trackers, breakers, downloads in flight, the index's usage, retention), cheap enough to answer
// every few seconds per screen. What is not cheap (pinned bytes: a walk of manifests) is cached here.
import type { BreakerState } from '../upstream/breaker.js';
import type { RateLimitState } from '../upstream/rate-limit.js';
import type { DownloadStatus } from '../cache/fills.js';
import type { LastGc } from '../cache/retention.js';
import type { History } from './history.js';
import { ratio, readPullsSpared, readTotals, type CounterSource } from './totals.js';

/** Pinned bytes are recomputed at most this often. */
export const PINNED_TTL_MS = 30_000;

/** One upstream registry as the snapshot reads it. */
export interface UpstreamPart {
  name: string;
  url: string;
  offline: boolean;
  rateLimit: { readonly pullsSpent: number; readonly current: RateLimitState | undefined; limitedForSeconds(): number };
  /** undefined when offline (no client, no breaker). */
  breaker: { readonly state: BreakerState } | undefined;
}

export interface SnapshotDeps {
  metrics: CounterSource;
  upstreams: readonly UpstreamPart[];
  fills: { downloads(): DownloadStatus[] };
  index: { readonly usage: { bytes: number; count: number } };
  retention: { readonly lastGc: LastGc | undefined; readonly highMark: number | undefined; readonly lowMark: number | undefined; pinnedBytes(): Promise<number> };
  quotaBytes: number | undefined;
  history: Pick<History, 'sums'>;
  version: string;
  /** ms since epoch. */
  startedAt: number;
  /** Safe to show: built by configSummary, never credentials. */
  config: object;
  now?: () => number;
}

export class StatusSnapshot {
  private pinned: { bytes: number; at: number } | undefined;
  private pinning: Promise<{ bytes: number; at: number }> | undefined;
  private readonly now: () => number;

  constructor(private readonly deps: SnapshotDeps) {
    this.now = deps.now ?? Date.now;
  }

  async build() {
    const { deps } = this;
    const now = this.now();
    const [totals, spared, pinned] = await Promise.all([readTotals(deps.metrics), readPullsSpared(deps.metrics), this.pinnedBytes(now)]);
    const hour = deps.history.sums();
    const usage = deps.index.usage;
    return {
      version: deps.version,
      now,
      startedAt: deps.startedAt,
      uptimeSeconds: Math.floor((now - deps.startedAt) / 1000),
      requests: {
        hits: totals.hits,
        misses: totals.misses,
        coalesced: totals.coalesced,
        errors: totals.errors,
        hitRatio: ratio(totals.hits, totals.hits + totals.misses),
      },
      bytes: {
        fromCache: totals.cacheBytes,
        fromUpstream: totals.upstreamBytes,
        saved: totals.cacheBytes,
        hitRatio: ratio(totals.cacheBytes, totals.cacheBytes + totals.upstreamBytes),
      },
      lastHour: {
        seconds: hour.seconds,
        hits: hour.hits,
        misses: hour.misses,
        hitRatio: ratio(hour.hits, hour.hits + hour.misses),
        fromCache: hour.cacheBytes,
        fromUpstream: hour.upstreamBytes,
        byteHitRatio: ratio(hour.cacheBytes, hour.cacheBytes + hour.upstreamBytes),
      },
      upstreams: deps.upstreams.map((u) => {
        const limit = u.rateLimit.current;
        return {
          name: u.name,
          url: u.url,
          offline: u.offline,
          pullsSpent: u.rateLimit.pullsSpent,
          pullsSpared: spared.get(u.name) ?? 0,
          rateLimit: limit
            ? {
                limit: limit.limit ?? null,
                remaining: limit.remaining ?? null,
                windowSeconds: limit.windowSeconds ?? null,
                observedAt: limit.observedAt,
                limitedForSeconds: u.rateLimit.limitedForSeconds(),
              }
            : null,
          breaker: u.breaker?.state ?? 'offline',
        };
      }),
      downloads: deps.fills.downloads().map((d) => {
        const seconds = Math.max(now - d.startedAt, 1) / 1000;
        return {
          digest: d.digest,
          repository: d.repository,
          registry: d.registry,
          bytes: d.written,
          size: d.size ?? null,
          bytesPerSecond: Math.round(d.written / seconds),
          clients: d.readers,
          startedAt: d.startedAt,
        };
      }),
      disk: {
        usedBytes: usage.bytes,
        blobs: usage.count,
        quotaBytes: deps.quotaBytes ?? null,
        highWatermarkBytes: deps.retention.highMark ?? null,
        lowWatermarkBytes: deps.retention.lowMark ?? null,
        pinnedBytes: pinned.bytes,
        pinnedAt: pinned.at,
        lastGc: deps.retention.lastGc ?? null,
      },
      config: deps.config,
    };
  }

  /** Cached for PINNED_TTL_MS; concurrent askers share one walk. */
  private async pinnedBytes(now: number): Promise<{ bytes: number; at: number }> {
    if (this.pinned && now - this.pinned.at < PINNED_TTL_MS) return this.pinned;
    this.pinning ??= this.deps.retention
      .pinnedBytes()
      .then((bytes) => (this.pinned = { bytes, at: now }))
      .finally(() => (this.pinning = undefined));
    return this.pinning;
  }
}

export type Status = Awaited<ReturnType<StatusSnapshot['build']>>;
