// Wires one mirror together from a Config: index, store, upstream, caches, routes, server. No logic of its own;
// `regmirror serve` runs it as a process, tests run it in-process.
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { BlobFills } from './cache/blob-fill.js';
import { DiskBlobStore } from './cache/blob-store.js';
import { BlobCache } from './cache/blobs.js';
import { ManifestCache } from './cache/manifests.js';
import type { Config } from './config/schema.js';
import { createRoutes } from './http/routes.js';
import { RegistryServer } from './http/server.js';
import { BlobIndex } from './index/blob-index.js';
import { openIndex } from './index/db.js';
import { LevelTagIndex } from './index/tag-index.js';
import { Metrics } from './metrics/metrics.js';
import { RegistryClient } from './upstream/client.js';
import { RateLimitTracker } from './upstream/rate-limit.js';

const TAG_STATS_FLUSH_MS = 5000;

export interface Mirror {
  readonly server: RegistryServer;
  readonly metrics: Metrics;
  /** Listens on config.listen; resolves with the bound address (port 0 picks a free one). */
  listen(): Promise<{ host: string; port: number }>;
  /** Graceful: stop accepting, finish responses (bounded), abort downloads, close upstream and index. */
  close(): Promise<void>;
}

export async function createMirror(config: Config, log: Logger): Promise<Mirror> {
  // Unreadable TLS files fail the start before anything touches the data directory.
  const tls = config.tls && { cert: await readFile(config.tls.cert), key: await readFile(config.tls.key) };
  const metrics = new Metrics(new Registry());
  const store = new DiskBlobStore(config.dataDir);
  const { removedTempFiles } = await store.init();
  if (removedTempFiles > 0) log.info({ removedTempFiles }, 'removed unfinished downloads');
  const db = await openIndex(config.dataDir);
  const index = new BlobIndex(db, config.cache.metadataEntries);
  const tags = new LevelTagIndex(db, config.cache.metadataEntries);
  const rateLimit = new RateLimitTracker(config.rateLimit.reserve, metrics, log.child({ module: 'ratelimit' }));
  const upstream = new RegistryClient(config.upstream, metrics, rateLimit);
  const fills = new BlobFills({
    store,
    index,
    upstream,
    metrics,
    log: log.child({ module: 'fill' }),
    fillTimeoutMs: config.upstream.fillTimeout,
  });
  const blobs = new BlobCache(store, index, fills, upstream);
  const manifests = new ManifestCache({
    store,
    index,
    tags,
    upstream,
    rateLimit,
    tagsConfig: config.tags,
    metrics,
    log: log.child({ module: 'manifests' }),
    memoryBytes: config.cache.manifestMemoryBytes,
  });
  const server = new RegistryServer({
    handler: createRoutes({
      readiness: async () => {
        const index = db.status;
        const writable = await access(join(config.dataDir, 'tmp'), constants.W_OK).then(
          () => true,
          () => false,
        );
        const breaker = upstream.breaker.state;
        return { ready: index === 'open' && writable, index, dataDirWritable: writable, upstream: { breaker } };
      },
      blobs,
      manifests,
      upstream,
      metrics,
      registry: metrics.registry,
    }),
    log,
    metrics,
    tls,
  });
  // Pull counts per tag reach the index in batches, not one write per hit.
  const flushTimer = setInterval(() => {
    tags.flush().catch((err: unknown) => log.warn({ err }, 'tag statistics not saved'));
  }, TAG_STATS_FLUSH_MS);
  flushTimer.unref();
  return {
    server,
    metrics,
    listen: () => server.listen(config.listen.host, config.listen.port),
    async close() {
      clearInterval(flushTimer);
      await server.close(config.shutdownTimeout);
      await fills.abortAll();
      await tags.flush();
      await upstream.close();
      await db.close();
    },
  };
}
