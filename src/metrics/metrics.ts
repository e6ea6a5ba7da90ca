// Every metric regmirror exports, in one place. The prom-client Registry is injected so tests can read it.
import { Counter, Gauge, Histogram, type Registry, collectDefaultMetrics } from 'prom-client';

export type CacheKind = 'manifest' | 'blob' | 'tags';
export type CacheResult = 'hit' | 'miss' | 'coalesced' | 'error';

export class Metrics {
  /** Requests answered, by what they asked for and where the answer came from. Counted once per request. */
  readonly cacheRequests: Counter<'kind' | 'result'>;
  /** Bytes sent to clients: `cache` from a verified file, `upstream` from a download in progress. */
  readonly servedBytes: Counter<'source'>;
  /** Every request sent upstream; status `error` when no response came. */
  readonly upstreamRequests: Counter<'kind' | 'method' | 'status'>;
  /** Blob bytes received from upstream. */
  readonly upstreamBytes: Counter;
  /** Blob downloads that ended, by outcome. */
  readonly fills: Counter<'result'>;
  readonly fillsInFlight: Gauge;
  /** Downloads refused because bytes did not match: `digest`, `size`, `truncated` (upstream ended early). */
  readonly verifyFailures: Counter<'reason'>;
  readonly httpDuration: Histogram<'method' | 'status'>;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.cacheRequests = new Counter({
      name: 'regmirror_cache_requests_total',
      help: 'Registry requests by kind and cache result',
      labelNames: ['kind', 'result'],
      registers,
    });
    this.servedBytes = new Counter({
      name: 'regmirror_served_bytes_total',
      help: 'Bytes sent to clients, by source',
      labelNames: ['source'],
      registers,
    });
    this.upstreamRequests = new Counter({
      name: 'regmirror_upstream_requests_total',
      help: 'Requests sent to the upstream registry, by kind, method and response status',
      labelNames: ['kind', 'method', 'status'],
      registers,
    });
    this.upstreamBytes = new Counter({
      name: 'regmirror_upstream_blob_bytes_total',
      help: 'Blob bytes received from upstream',
      registers,
    });
    this.fills = new Counter({
      name: 'regmirror_blob_fills_total',
      help: 'Blob downloads from upstream that ended, by result',
      labelNames: ['result'],
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
    collectDefaultMetrics({ register: registry, prefix: 'regmirror_' });
  }
}
