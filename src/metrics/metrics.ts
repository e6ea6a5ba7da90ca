// Every metric regmirror exports, in one place. The prom-client Registry is injected so tests can read it.
import { Counter, Gauge, Histogram, type Registry, collectDefaultMetrics } from 'prom-client';

export type CacheKind = 'manifest' | 'blob' | 'tags';
export type CacheResult = 'hit' | 'miss' | 'coalesced' | 'error';

export class Metrics {
  /** Requests answered, by what they asked for and where the answer came from. Counted once per request. */
  readonly cacheRequests: Counter<'registry' | 'kind' | 'result'>;
  /** Bytes sent to clients: `cache` from a verified file, `upstream` from a download in progress. */
  readonly servedBytes: Counter<'registry' | 'source'>;
  /**
   * Client manifest GETs answered without a manifest GET upstream (a cache hit, a stale answer, or a share of
   * another client's GET): the pulls Docker Hub would have counted had clients gone there directly.
   */
  readonly pullsSpared: Counter<'registry'>;
  /** Every request sent upstream; status `error` when no response came. */
  readonly upstreamRequests: Counter<'registry' | 'kind' | 'method' | 'status'>;
  /** Blob bytes received from upstream. */
  readonly upstreamBytes: Counter<'registry'>;
  /** Blob downloads that ended, by outcome. */
  readonly fills: Counter<'registry' | 'result'>;
  readonly fillsInFlight: Gauge;
  /** Downloads continued with a Range request after upstream's body broke. */
  readonly fillResumes: Counter;
  /** Downloads refused because bytes did not match: `digest`, `size`, `truncated` (upstream ended early). */
  readonly verifyFailures: Counter<'reason'>;
  readonly httpDuration: Histogram<'method' | 'status'>;
  /** Docker Hub's last reported pull allowance (`ratelimit-limit`, `ratelimit-remaining`, window `w`). */
  readonly rateLimitLimit: Gauge<'registry'>;
  readonly rateLimitRemaining: Gauge<'registry'>;
  readonly rateLimitWindow: Gauge<'registry'>;
  /** 1 while the circuit breaker keeps requests away from a failing upstream. */
  readonly breakerOpen: Gauge<'registry'>;
  /** Tag checks past their TTL: `unchanged` (HEAD only), `changed` (a new digest), `deleted` (404), `error`. */
  readonly tagRevalidations: Counter<'registry' | 'result'>;
  /** Tags answered from cache without upstream's confirmation: `error` (upstream failed), `ratelimit` (reserve), `deleted` (keepDeleted). */
  readonly staleServed: Counter<'registry' | 'reason'>;
  /** What the store holds (from the index): bytes and files, manifests included. */
  readonly storeBytes: Gauge;
  readonly storeBlobs: Gauge;
  /** Content removed to stay under the quota (or after a full disk), and its bytes. */
  readonly evictions: Counter;
  readonly evictedBytes: Counter;
  /** Garbage collections run, by mode (`dry-run`, `remove`), and the bytes they removed. */
  readonly gcRuns: Counter<'mode'>;
  readonly gcFreedBytes: Counter;
  /** Content that could not be written to the store, by reason (`enospc`, `edquot`); it was served uncached. */
  readonly storeWriteFailures: Counter<'reason'>;
  private usage: () => { bytes: number; count: number } = () => ({ bytes: 0, count: 0 });

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.cacheRequests = new Counter({
      name: 'regmirror_cache_requests_total',
      help: 'Registry requests by kind and cache result',
      labelNames: ['registry', 'kind', 'result'],
      registers,
    });
    this.servedBytes = new Counter({
      name: 'regmirror_served_bytes_total',
      help: 'Bytes sent to clients, by source',
      labelNames: ['registry', 'source'],
      registers,
    });
    this.pullsSpared = new Counter({
      name: 'regmirror_pulls_spared_total',
      help: 'Client manifest GETs answered without a manifest GET upstream (pulls not spent)',
      labelNames: ['registry'],
      registers,
    });
    this.upstreamRequests = new Counter({
      name: 'regmirror_upstream_requests_total',
      help: 'Requests sent to the upstream registry, by kind, method and response status',
      labelNames: ['registry', 'kind', 'method', 'status'],
      registers,
    });
    this.upstreamBytes = new Counter({
      name: 'regmirror_upstream_blob_bytes_total',
      help: 'Blob bytes received from upstream',
      labelNames: ['registry'],
      registers,
    });
    this.fills = new Counter({
      name: 'regmirror_blob_fills_total',
      help: 'Blob downloads from upstream that ended, by result',
      labelNames: ['registry', 'result'],
      registers,
    });
    this.fillResumes = new Counter({
      name: 'regmirror_blob_fill_resumes_total',
      help: 'Blob downloads resumed with a Range request after the upstream body broke',
      registers,
    });
    this.fillsInFlight = new Gauge({
      name: 'regmirror_blob_fills_in_flight',
      help: 'Blob downloads from upstream in progress',
      registers,
    });
    this.verifyFailures = new Counter({
      name: 'regmirror_verify_failures_total',
      help: 'Upstream content refused because it did not match its digest or size',
      labelNames: ['reason'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'regmirror_http_request_duration_seconds',
      help: 'Time to answer registry API requests, until the last byte',
      labelNames: ['method', 'status'],
      buckets: [0.001, 0.005, 0.025, 0.1, 0.5, 2, 10, 60],
      registers,
    });
    this.rateLimitLimit = new Gauge({
      name: 'regmirror_upstream_ratelimit_limit',
      help: 'Pulls allowed per window, as upstream last reported (ratelimit-limit)',
      labelNames: ['registry'],
      registers,
    });
    this.rateLimitRemaining = new Gauge({
      name: 'regmirror_upstream_ratelimit_remaining',
      help: 'Pulls left in the window, as upstream last reported (ratelimit-remaining)',
      labelNames: ['registry'],
      registers,
    });
    this.rateLimitWindow = new Gauge({
      name: 'regmirror_upstream_ratelimit_window_seconds',
      help: 'Length of the rate-limit window, as upstream last reported',
      labelNames: ['registry'],
      registers,
    });
    this.breakerOpen = new Gauge({
      name: 'regmirror_upstream_breaker_open',
      help: '1 while requests to upstream are held back after repeated failures',
      labelNames: ['registry'],
      registers,
    });
    this.tagRevalidations = new Counter({
      name: 'regmirror_tag_revalidations_total',
      help: 'Tags checked upstream after their TTL, by result',
      labelNames: ['registry', 'result'],
      registers,
    });
    this.staleServed = new Counter({
      name: 'regmirror_stale_served_total',
      help: 'Tags served from cache without upstream confirmation, by reason',
      labelNames: ['registry', 'reason'],
      registers,
    });
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- collect() runs with the gauge as `this`
    const self = this;
    this.storeBytes = new Gauge({
      name: 'regmirror_store_bytes',
      help: 'Bytes of content in the store',
      registers,
      collect() {
        this.set(self.usage().bytes);
      },
    });
    this.storeBlobs = new Gauge({
      name: 'regmirror_store_blobs',
      help: 'Blobs and manifests in the store',
      registers,
      collect() {
        this.set(self.usage().count);
      },
    });
    this.evictions = new Counter({ name: 'regmirror_evictions_total', help: 'Blobs and manifests evicted (least recently used first)', registers });
    this.evictedBytes = new Counter({ name: 'regmirror_evicted_bytes_total', help: 'Bytes evicted', registers });
    this.gcRuns = new Counter({ name: 'regmirror_gc_runs_total', help: 'Garbage collections, by mode', labelNames: ['mode'], registers });
    this.gcFreedBytes = new Counter({ name: 'regmirror_gc_freed_bytes_total', help: 'Bytes removed by garbage collection', registers });
    this.storeWriteFailures = new Counter({
      name: 'regmirror_store_write_failures_total',
      help: 'Content served without caching because it could not be written, by reason',
      labelNames: ['reason'],
      registers,
    });
    collectDefaultMetrics({ register: registry, prefix: 'regmirror_' });
  }

  /** Where the store gauges read their figures (the index keeps them). */
  setUsageSource(usage: () => { bytes: number; count: number }): void {
    this.usage = usage;
  }
}
