// /metrics of a mirror served by several processes (http.workers): this process's metrics summed with the
// workers', series by series, as prom-client's AggregatorRegistry does for a cluster (counters and histograms add
// up; each metric's own `aggregator` where it declares one). Every event is counted in exactly one process.
import { AggregatorRegistry, type Registry } from 'prom-client';

export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** What the routes render at /metrics: `own` plus whatever `others` reports at the time of the scrape. */
export function summedWith(own: Registry, others: () => Promise<MetricsJson[]>): Pick<Registry, 'metrics' | 'contentType'> {
  return {
    contentType: own.contentType,
    async metrics() {
      const all = [await own.getMetricsAsJSON(), ...(await others())];
      return AggregatorRegistry.aggregate(all).metrics();
    },
  };
}
