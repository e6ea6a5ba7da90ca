// Wires one worker of http.workers (issue 16.3) from the primary's Config: the same listener, limits, client
// auth and registry routing as the single process, in front of the shared store (read only) and the primary's
// internal socket. No index, no upstream, no timers of the cache: those are the primary's (app.ts).
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { DiskBlobStore } from './cache/blob-store.js';
import { registriesOf } from './config/registries.js';
import type { Config } from './config/schema.js';
import { ClientAuth } from './http/client-auth.js';
import type { RegistryFront } from './http/routes.js';
import { RegistryServer } from './http/server.js';
import { PrimaryLink } from './http/workers/forward.js';
import { createWorkerRoutes } from './http/workers/front.js';
import { Metrics } from './metrics/metrics.js';
import type { Digest } from './registry/reference.js';
import { repositoryAllowed } from './registry/repository-glob.js';

export interface WorkerFront {
  readonly metrics: Metrics;
  listen(): Promise<{ host: string; port: number }>;
  /** Drains the clients (bounded by shutdownTimeout), then what is still forwarded. */
  close(): Promise<void>;
}

export async function createWorkerFront(
  config: Config,
  log: Logger,
  o: { socketPath: string; workerId: number; accessed: (digest: Digest) => void },
): Promise<WorkerFront> {
  const tls = config.tls && { cert: await readFile(config.tls.cert), key: await readFile(config.tls.key) };
  const auth = config.auth && (await ClientAuth.open(config.auth, log.child({ module: 'auth' })));
  const metrics = new Metrics(new Registry());
  const { list, defaultName } = registriesOf(config);
  const registries = new Map<string, RegistryFront>(list.map((r) => [r.name, { name: r.name, offline: r.offline, allows: repositoryAllowed(r.allow) }]));
  const primary = new PrimaryLink(o.socketPath, config.http.idleTimeout);
  const server = new RegistryServer({
    handler: createWorkerRoutes({
      registries,
      defaultRegistry: registries.get(defaultName) as RegistryFront,
      auth,
      store: new DiskBlobStore(config.dataDir),
      primary,
      metrics,
      sendTimeout: config.http.idleTimeout,
      accessed: o.accessed,
    }),
    log,
    metrics,
    tls,
    limits: config.http,
    idPrefix: `w${o.workerId}-`,
  });
  return {
    metrics,
    listen: () => server.listen(config.listen.host, config.listen.port),
    async close() {
      await server.close(config.shutdownTimeout);
      await primary.close();
    },
  };
}
