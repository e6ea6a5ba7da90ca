// The status page's numbers without a network: the last-hour ring (injected clock and timer, no sleeping), the
// snapshot read from the very counters /metrics renders, and the caches that keep a wall screen cheap.
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/metrics/metrics.js';
import type { Digest, Repository } from '../../src/registry/reference.js';
import { History, type Every } from '../../src/status/history.js';
import { PINNED_TTL_MS, StatusSnapshot, type SnapshotDeps } from '../../src/status/snapshot.js';
import { readTotals } from '../../src/status/totals.js';
import { metricValue } from '../fixtures/mirror.js';

/** A timer the test fires by hand. */
function manualTimer(): { every: Every; tick: () => void; stopped: () => boolean } {
  let fn: (() => void) | undefined;
  let stopped = false;
  return {
    every: (_ms, f) => {
      fn = f;
      return () => (stopped = true);
    },
    tick: () => fn?.(),
    stopped: () => stopped,
  };
}

function served(metrics: Metrics, hits: number, misses: number, cacheBytes: number, upstreamBytes: number): void {
  metrics.cacheRequests.inc({ registry: 'docker.io', kind: 'blob', result: 'hit' }, hits);
  metrics.cacheRequests.inc({ registry: 'docker.io', kind: 'blob', result: 'miss' }, misses);
  metrics.servedBytes.inc({ registry: 'docker.io', source: 'cache' }, cacheBytes);
  metrics.servedBytes.inc({ registry: 'docker.io', source: 'upstream' }, upstreamBytes);
}

describe('History', () => {
  it('turns each 10 s reading into what the counters grew by, with the clock it was given', async () => {
    const metrics = new Metrics(new Registry());
    let now = 1_000_000;
    const timer = manualTimer();
    const history = new History({ read: () => readTotals(metrics), now: () => now, every: timer.every });
    served(metrics, 5, 5, 100, 100); // before start: the baseline, not a point
    await history.start();
    expect(history.points()).toEqual([]);
    served(metrics, 3, 1, 3000, 1000);
    now += 10_000;
    await history.sample();
    served(metrics, 0, 2, 0, 500);
    now += 10_000;
    await history.sample();
    expect(history.points()).toEqual([
      { at: 1_010_000, hits: 3, misses: 1, cacheBytes: 3000, upstreamBytes: 1000 },
      { at: 1_020_000, hits: 0, misses: 2, cacheBytes: 0, upstreamBytes: 500 },
    ]);
    expect(history.sums()).toEqual({ hits: 3, misses: 3, cacheBytes: 3000, upstreamBytes: 1500, seconds: 20 });
    history.stop();
    expect(timer.stopped()).toBe(true);
  });

  it('keeps the last 360 points (an hour), oldest first, and drops older ones', async () => {
    const metrics = new Metrics(new Registry());
    let now = 0;
    const history = new History({ read: () => readTotals(metrics), now: () => now, every: manualTimer().every });
    await history.start();
    for (let i = 1; i <= 400; i++) {
      served(metrics, i, 0, 0, 0);
      now = i * 10_000;
      await history.sample();
    }
    const points = history.points();
    expect(points).toHaveLength(360);
    expect(points[0]).toMatchObject({ at: 41 * 10_000, hits: 41 });
    expect(points[359]).toMatchObject({ at: 400 * 10_000, hits: 400 });
    expect(history.sums().seconds).toBe(3600);
  });

  it('samples on the timer it was given, one reading at a time', async () => {
    const metrics = new Metrics(new Registry());
    const timer = manualTimer();
    let reads = 0;
    let release: () => void = () => undefined;
    const history = new History({
      read: async () => {
        reads++;
        if (reads === 2) await new Promise<void>((resolve) => (release = resolve));
        return readTotals(metrics);
      },
      every: timer.every,
    });
    await history.start();
    timer.tick(); // a slow reading…
    timer.tick(); // …is not overlapped by the next tick
    expect(reads).toBe(2);
    release();
    await history.sample();
    expect(history.points()).toHaveLength(1);
  });
});

function snapshotDeps(metrics: Metrics, over: Partial<SnapshotDeps> = {}): SnapshotDeps & { pinWalks: () => number } {
  let walks = 0;
  return {
    metrics,
    upstreams: [
      {
        name: 'docker.io',
        url: 'https://registry-1.docker.io',
        offline: false,
        rateLimit: { pullsSpent: 7, current: { limit: 100, remaining: 93, windowSeconds: 21600, observedAt: 5 }, limitedForSeconds: () => 0 },
        breaker: { state: 'closed' },
      },
      { name: 'ghcr.io', url: 'none', offline: true, rateLimit: { pullsSpent: 0, current: undefined, limitedForSeconds: () => 0 }, breaker: undefined },
    ],
    fills: {
      downloads: () => [{ digest: `sha256:${'b'.repeat(64)}` as Digest, repository: 'library/alpine' as Repository, registry: 'docker.io', startedAt: 0, written: 4000, size: 10_000, readers: 2 }],
    },
    index: { usage: { bytes: 123_456, count: 9 } },
    retention: {
      lastGc: { at: 3, removed: 2, bytes: 50 },
      highMark: 900,
      lowMark: 800,
      pinnedBytes: () => {
        walks++;
        return Promise.resolve(4242);
      },
    },
    quotaBytes: 1000,
    history: { sums: () => ({ hits: 1, misses: 3, cacheBytes: 10, upstreamBytes: 30, seconds: 20 }) },
    version: '9.9.9',
    startedAt: 0,
    config: { listen: '127.0.0.1:5000' },
    ...over,
    pinWalks: () => walks,
  };
}

describe('StatusSnapshot', () => {
  it('reports the figures /metrics shows: hits over hits + misses (coalesced counted as misses), bytes saved = bytes from cache', async () => {
    const metrics = new Metrics(new Registry());
    served(metrics, 6, 1, 7000, 3000);
    metrics.cacheRequests.inc({ registry: 'docker.io', kind: 'manifest', result: 'coalesced' }, 1);
    metrics.cacheRequests.inc({ registry: 'docker.io', kind: 'manifest', result: 'error' }, 4);
    metrics.pullsSpared.inc({ registry: 'docker.io' }, 5);
    const now = 2000;
    const status = await new StatusSnapshot({ ...snapshotDeps(metrics), now: () => now }).build();
    const text = await metrics.registry.metrics();
    const hits = metricValue(text, 'regmirror_cache_requests_total', { result: 'hit' });
    const misses = metricValue(text, 'regmirror_cache_requests_total', { result: 'miss' }) + metricValue(text, 'regmirror_cache_requests_total', { result: 'coalesced' });
    expect(status.requests).toEqual({ hits, misses, coalesced: 1, errors: 4, hitRatio: hits / (hits + misses) });
    expect(status.requests.hitRatio).toBe(0.75);
    const cache = metricValue(text, 'regmirror_served_bytes_total', { source: 'cache' });
    expect(status.bytes).toEqual({ fromCache: cache, fromUpstream: 3000, saved: cache, hitRatio: 0.7 });
    expect(status.lastHour).toMatchObject({ hitRatio: 0.25, byteHitRatio: 0.25, seconds: 20 });
    expect(status.upstreams[0]).toEqual({
      name: 'docker.io',
      url: 'https://registry-1.docker.io',
      offline: false,
      pullsSpent: 7,
      pullsSpared: metricValue(text, 'regmirror_pulls_spared_total', { registry: 'docker.io' }),
      rateLimit: { limit: 100, remaining: 93, windowSeconds: 21600, observedAt: 5, limitedForSeconds: 0 },
      breaker: 'closed',
    });
    expect(status.upstreams[1]).toMatchObject({ rateLimit: null, breaker: 'offline', pullsSpared: 0 });
    expect(status.downloads).toEqual([
      { digest: `sha256:${'b'.repeat(64)}`, repository: 'library/alpine', registry: 'docker.io', bytes: 4000, size: 10_000, bytesPerSecond: 2000, clients: 2, startedAt: 0 },
    ]);
    expect(status.disk).toEqual({ usedBytes: 123_456, blobs: 9, quotaBytes: 1000, highWatermarkBytes: 900, lowWatermarkBytes: 800, pinnedBytes: 4242, pinnedAt: now, lastGc: { at: 3, removed: 2, bytes: 50 } });
    expect(status).toMatchObject({ version: '9.9.9', uptimeSeconds: 2 });
  });

  it('says null, not 0 %, before anything was served', async () => {
    const status = await new StatusSnapshot(snapshotDeps(new Metrics(new Registry()))).build();
    expect(status.requests.hitRatio).toBeNull();
    expect(status.bytes.hitRatio).toBeNull();
  });

  it('walks the pins at most once per 30 s however often it is asked, and concurrent askers share the walk', async () => {
    let now = 0;
    const deps = snapshotDeps(new Metrics(new Registry()));
    const snapshot = new StatusSnapshot({ ...deps, now: () => now });
    await Promise.all([snapshot.build(), snapshot.build(), snapshot.build()]);
    expect(deps.pinWalks()).toBe(1);
    for (let i = 0; i < 10; i++) {
      now += 2000;
      await snapshot.build();
    }
    expect(deps.pinWalks()).toBe(1);
    now = PINNED_TTL_MS;
    await snapshot.build();
    expect(deps.pinWalks()).toBe(2);
  });
});
