// The status page's figures as /metrics shows them: read from the very counters the registry path increments
// (prom-client's get()), never by parsing the Prometheus text, so the two always agree.
import type { Counter } from 'prom-client';

/**
 * Since start. A hit is a request answered from what the mirror holds (result `hit`, stale answers included);
 * a miss needed upstream: its own request (`miss`) or a share of another client's (`coalesced`). Errors are
 * neither. Bytes are `regmirror_served_bytes_total`: `cache` from verified files, `upstream` relayed from a
 * download in progress.
 */
export interface Totals {
  hits: number;
  misses: number;
  coalesced: number;
  errors: number;
  cacheBytes: number;
  upstreamBytes: number;
}

export interface CounterSource {
  cacheRequests: Pick<Counter<'registry' | 'kind' | 'result'>, 'get'>;
  servedBytes: Pick<Counter<'registry' | 'source'>, 'get'>;
  pullsSpared: Pick<Counter<'registry'>, 'get'>;
}

export async function readTotals(metrics: CounterSource): Promise<Totals> {
  const totals: Totals = { hits: 0, misses: 0, coalesced: 0, errors: 0, cacheBytes: 0, upstreamBytes: 0 };
  for (const { labels, value } of (await metrics.cacheRequests.get()).values) {
    if (labels.result === 'hit') totals.hits += value;
    else if (labels.result === 'miss') totals.misses += value;
    else if (labels.result === 'coalesced') {
      totals.misses += value;
      totals.coalesced += value;
    } else if (labels.result === 'error') totals.errors += value;
  }
  for (const { labels, value } of (await metrics.servedBytes.get()).values) {
    if (labels.source === 'cache') totals.cacheBytes += value;
    else if (labels.source === 'upstream') totals.upstreamBytes += value;
  }
  return totals;
}

/** `regmirror_pulls_spared_total` by registry. */
export async function readPullsSpared(metrics: Pick<CounterSource, 'pullsSpared'>): Promise<Map<string, number>> {
  const spared = new Map<string, number>();
  for (const { labels, value } of (await metrics.pullsSpared.get()).values) {
    const registry = String(labels.registry);
    spared.set(registry, (spared.get(registry) ?? 0) + value);
  }
  return spared;
}

/** part / (part + rest), or null when nothing was counted (no ratio to show, not 0 %). */
export function ratio(part: number, whole: number): number | null {
  return whole > 0 ? part / whole : null;
}
