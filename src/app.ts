// Wires one mirror together from a Config: index, store, upstream, caches, routes, server. No logic of its own;
// `regmirror serve` runs it as a process, tests run it in-process.
import { constants } from 'node:fs';
import { access, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { DiskBlobStore } from './cache/blob-store.js';
import { BlobCache } from './cache/blobs.js';
import { BlobFills } from './cache/fills.js';
import { InUse } from './cache/in-use.js';
import { manifestBodies, type ManifestBodies, type PendingManifest } from './cache/manifest-store.js';
import type { Digest } from './registry/reference.js';
import { PullBudget } from './cache/pull-budget.js';
import { ImportJournal, recoverInterruptedImport } from './seed/import-journal.js';
import { ManifestCache } from './cache/manifests.js';
import { BlobPrefetch } from './cache/prefetch.js';
import { RepoGuard } from './cache/repo-guard.js';
import { Retention, type GcReport } from './cache/retention.js';
import { TagLists } from './cache/tag-lists.js';
import { registriesOf, type RegistryConfig } from './config/registries.js';
import type { Config } from './config/schema.js';
import { ClientAuth } from './http/client-auth.js';
import { createRoutes, type MirroredRegistry } from './http/routes.js';
import { RegistryServer } from './http/server.js';
import { BlobIndex } from './index/blob-index.js';
import { openIndex, type IndexDb } from './index/db.js';
import { LevelTagIndex } from './index/tag-index.js';
import { PinIndex } from './index/pin-index.js';
import { RepoBlobIndex } from './index/repo-blob-index.js';
import { repositoryAllowed } from './registry/repository-glob.js';
import { Metrics } from './metrics/metrics.js';
import { RegistryClient } from './upstream/client.js';
import { OfflineUpstream } from './upstream/offline.js';
import type { Upstream } from './upstream/upstream.js';
import { RateLimitTracker } from './upstream/rate-limit.js';
import { configSummary, type ConfigSummary } from './status/config-summary.js';
import { openStatusConsole, type StatusConsole } from './status/console.js';
import { AdminOperations, type AdminRegistry } from './admin/operations.js';
import { ADMIN_PREFIX, createAdminRoutes, requireBearer } from './admin/routes.js';
import { startAdminSocket as startAdmin, type AdminSocket } from './admin/socket.js';
import { ConfigError } from './config/load.js';
import { listenPrivate, MAX_SOCKET_PATH } from './http/unix-socket.js';
import { summedWith, type MetricsJson } from './metrics/aggregate.js';
import { RegistryError } from './registry/errors.js';
import type { Handler } from './http/server.js';

const STATS_FLUSH_MS = 5000;
/** The primary's internal socket in the data directory, while it runs with http.workers. */
const PRIMARY_SOCKET = 'primary.sock';

export interface Mirror {
  readonly server: RegistryServer;
  readonly metrics: Metrics;
  readonly retention: Retention;
  /** The status page's parts (its history sampler, for tests); undefined when `status.page` is off. */
  readonly status: StatusConsole | undefined;
  /** The operations the admin socket and `/api/v1/admin/` serve. */
  readonly admin: AdminOperations;
  /** The admin socket's path while it listens; undefined before listen, with admin.socket false, or a path too long. */
  readonly adminSocket: string | undefined;
  /** One garbage collection now (the server also runs one every cache.gcInterval). */
  gc(): Promise<GcReport>;
  /** Listens on config.listen; resolves with the bound address (port 0 picks a free one). */
  listen(): Promise<{ host: string; port: number }>;
  /**
   * With http.workers: the admin socket, and instead of the port the internal socket the workers forward to
   * (`<dataDir>/primary.sock`, mode 0600), for `connections` of them at most. Resolves with its path.
   */
  listenPrimary(connections: number): Promise<string>;
  /** Accesses answered by workers, for retention's least-recently-used order (batched like the mirror's own). */
  touch(digests: readonly Digest[]): void;
  /** Graceful: stop accepting, finish responses (bounded), abort downloads, close upstream and index. */
  close(): Promise<void>;
}

/** One registry's parts: its upstream and the caches that ask it, over the shared store and index. */
interface RegistryParts extends MirroredRegistry {
  readonly upstream: Upstream;
  /** The real client, or undefined when offline. */
  readonly client: RegistryClient | undefined;
  readonly rateLimit: RateLimitTracker;
}

/**
 * The cache's wired parts, without its HTTP server: `serve` puts the routes in front of them; the admin
 * operations (adminOperations: the admin socket, and the CLI's direct mode through openAdmin) get only the
 * slices they declare. Never handed to domain code.
 */
interface Cache {
  readonly metrics: Metrics;
  readonly store: DiskBlobStore;
  readonly db: IndexDb;
  readonly index: BlobIndex;
  readonly tags: LevelTagIndex;
  readonly pins: PinIndex;
  readonly fills: BlobFills;
  readonly inUse: InUse;
  readonly retention: Retention;
  readonly registries: ReadonlyMap<string, RegistryParts>;
  readonly defaultRegistry: RegistryParts;
  /** Writes batched access times and tag statistics. */
  flush(): Promise<void>;
  /** Aborts downloads, flushes, closes upstream and the index. */
  close(): Promise<void>;
}

export interface CacheOptions {
  /** The clock of tag TTLs, the breaker, token expiry and rate-limit windows; tests move it instead of sleeping. */
  now?: () => number;
}

/**
 * Builds the blob table in the background: opening reads nothing proportional to the cache, and HEADs read the
 * index until it is built. Only a serving mirror builds it: a one-shot command (`ls`, `gc` on a stopped mirror)
 * would scan the whole index and hold 42 bytes a blob for nothing.
 */
function startBlobTable(index: BlobIndex, config: Config, log: Logger): void {
  const started = performance.now();
  index.buildTable(config.cache.blobTableEntries).then(
    () => log.info({ state: index.tableState, bytes: index.tableBytes, ms: Math.round(performance.now() - started) }, 'blob table built'),
    (err: unknown) => log.warn({ err }, 'blob table not built'),
  );
}

/** Opens the data directory (removing temp files of interrupted downloads) and wires the cache together. */
async function openCache(config: Config, log: Logger, options: CacheOptions = {}): Promise<Cache> {
  const metrics = new Metrics(new Registry());
  const now = options.now ?? Date.now;
  const store = new DiskBlobStore(config.dataDir);
  const { removedTempFiles } = await store.init();
  if (removedTempFiles > 0) log.info({ removedTempFiles }, 'removed unfinished downloads');
  const db = await openIndex(config.dataDir);
  const index = new BlobIndex(db, config.cache.metadataEntries);
  const tags = new LevelTagIndex(db, config.cache.metadataEntries);
  const pins = new PinIndex(db);
  // An import killed half-way added files it never recorded: they go now.
  const undone = await recoverInterruptedImport(importJournalPath(config), store, index);
  if (undone > 0) log.warn({ removedFiles: undone }, 'undid an interrupted import');
  const usage = await index.loadUsage();
  metrics.setUsageSource(() => index.usage);
  log.info({ storedBytes: usage.bytes, storedBlobs: usage.count, recounted: usage.recounted }, 'index open');
  const inUse = new InUse();
  // Manifests answered before their file is written, by digest, for every registry: retention follows them too.
  const storing = new Map<Digest, PendingManifest>();
  const retention = new Retention({ store, index, tags, pins, inUse, metrics, log: log.child({ module: 'retention' }), config: config.cache, storing });
  const fills = new BlobFills({ store, index, metrics, log: log.child({ module: 'fill' }), retention, inUse });
  const { list, defaultName } = registriesOf(config);
  const bodies = manifestBodies(config.cache.manifestMemoryBytes);
  const repoBlobs = new RepoBlobIndex(db, config.cache.metadataEntries);
  const shared = { store, index, tags, fills, inUse, metrics, now, bodies, repoBlobs, retention, storing };
  const registries = new Map(list.map((r) => [r.name, openRegistry(config, r, shared, log.child({ registry: r.name }))]));
  // Pull counts per tag and last-access times reach the index in batches, not one write per hit.
  const flush = async (): Promise<void> => {
    await tags.flush().catch((err: unknown) => log.warn({ err }, 'tag statistics not saved'));
    await index.flush().catch((err: unknown) => log.warn({ err }, 'access times not saved'));
  };
  return {
    metrics,
    store,
    db,
    index,
    tags,
    pins,
    fills,
    inUse,
    retention,
    registries,
    defaultRegistry: registries.get(defaultName) as RegistryParts,
    flush,
    async close() {
      await fills.abortAll();
      // A GC or eviction under way stops at its next step: the index closes after it, not under it.
      await retention.close();
      // Manifests answered before their file was written: written (or given up) before the index closes.
      await Promise.all([...registries.values()].map((r) => r.manifests.stored()));
      await flush();
      await index.stopTable();
      // Every client closes, and the index with them, whatever one of them says.
      await Promise.allSettled([...registries.values()].map((r) => r.upstream.close()));
      await db.close();
    },
  };
}

interface SharedParts {
  store: DiskBlobStore;
  index: BlobIndex;
  tags: LevelTagIndex;
  fills: BlobFills;
  inUse: InUse;
  metrics: Metrics;
  now: () => number;
  /** Manifest bodies in memory (cache.manifestMemoryBytes in all), shared by every registry. */
  bodies: ManifestBodies;
  /** Which repository holds which digest, for the registries pulled with credentials. */
  repoBlobs: RepoBlobIndex;
  retention: Retention;
  storing: Map<Digest, PendingManifest>;
}

function openRegistry(config: Config, r: RegistryConfig, shared: SharedParts, log: Logger): RegistryParts {
  const { store, index, tags, fills, inUse, metrics, now, bodies, repoBlobs, retention, storing } = shared;
  const rateLimit = new RateLimitTracker(config.rateLimit.reserve, metrics, log.child({ module: 'ratelimit' }), now, r.name);
  const client = r.offline ? undefined : new RegistryClient(r, metrics, rateLimit, now);
  // Every registry's series exist from the start, at 0, for dashboards and absent() alerts.
  metrics.breakerOpen.set({ registry: r.name }, 0);
  metrics.upstreamBytes.inc({ registry: r.name }, 0);
  metrics.pullsSpared.inc({ registry: r.name }, 0);
  for (const result of ['ok', 'error']) metrics.fills.inc({ registry: r.name, result }, 0);
  const upstream: Upstream = client ?? new OfflineUpstream(r.name);
  // Credentials may open private repositories: then content by digest is served only for a repository known to
  // hold it (issue 14, finding 3). Anonymous pulls fetch public content only, shared by digest as before.
  const guard = client && r.credentials ? new RepoGuard({ index: repoBlobs, upstream, log: log.child({ module: 'guard' }) }) : undefined;
  const manifests = new ManifestCache({
    store,
    index,
    tags,
    upstream,
    rateLimit,
    tagsConfig: r.tags,
    metrics,
    log: log.child({ module: 'manifests' }),
    memoryBytes: config.cache.manifestMemoryBytes,
    bodies,
    storing,
    removals: retention,
    inUse,
    budget: config.rateLimit.perClient === 'off' ? undefined : new PullBudget(config.rateLimit.perClient, now),
    now,
    guard,
    // Bound below: the blob cache is built on the manifest cache (a manifest digest asked on /blobs/).
    onFetched: (repo, manifest) => prefetch?.start(repo, manifest),
  });
  const blobs = new BlobCache({ store, index, fills, upstream, fillTimeoutMs: r.fillTimeout, manifests, inUse, guard });
  const prefetch: BlobPrefetch | undefined = client
    ? new BlobPrefetch({ blobs, fills, index, retention, limit: config.cache.prefetchBlobs, log: log.child({ module: 'prefetch' }) })
    : undefined;
  const tagLists = new TagLists({ upstream, tags, log: log.child({ module: 'tags' }) });
  return { name: r.name, offline: r.offline, allows: repositoryAllowed(r.allow), upstream, client, rateLimit, manifests, blobs, tagLists };
}

/** The admin operations over the cache's parts: the same for the running mirror and the CLI's direct mode. */
function adminOperations(config: Config, cache: Cache): AdminOperations {
  const { store, index, tags, pins, fills, inUse, retention, registries } = cache;
  const configPins = config.cache.pins;
  const admin = new Map<string, AdminRegistry>(
    [...registries.values()].map((r) => [
      r.name,
      {
        offline: r.offline,
        seedDeps: { upstreamName: r.name, manifests: r.manifests, blobs: r.blobs, fills, index, pins },
        revalidateTag: (repo, tag) => r.manifests.revalidateTag(repo, tag),
      },
    ]),
  );
  return new AdminOperations({
    dataDir: config.dataDir,
    images: { tags, index, store, pins, configPins },
    tags,
    pins,
    configPins,
    retention,
    registries: admin,
    pullsSpent: () => [...registries.values()].reduce((sum, r) => sum + r.rateLimit.pullsSpent, 0),
    exporting: { store, index, tags, pins, configPins },
    importing: { registries: new Set(registries.keys()), store, index, tags, pins, journal: new ImportJournal(importJournalPath(config)) },
    inUse,
    flush: () => cache.flush(),
  });
}

/** The admin operations on a stopped mirror's data directory, for the CLI when no admin socket answers. */
export async function openAdmin(config: Config, log: Logger): Promise<{ admin: AdminOperations; close(): Promise<void> }> {
  const cache = await openCache(config, log);
  return { admin: adminOperations(config, cache), close: () => cache.close() };
}

/**
 * What the mirror's port answers outside the registry API: `/api/v1/admin/` when `admin.token` is set (behind
 * the bearer check), else the status page's handler (the other part of issue 15), else 404.
 */
function consoleRoutes(admin: Handler, token: string | undefined, status: Handler | undefined): Handler {
  const guarded = token === undefined ? undefined : requireBearer(token, admin);
  return async (ctx) => {
    if (ctx.path.startsWith(ADMIN_PREFIX)) {
      if (!guarded) throw new RegistryError('NOT_FOUND', 'no such endpoint');
      return guarded(ctx);
    }
    if (!status) throw new RegistryError('NOT_FOUND', 'no such endpoint');
    return status(ctx);
  };
}

/** Where an import lists what it adds while it runs (next to index/, outside tmp/, which every start empties). */
function importJournalPath(config: Config): string {
  return join(config.dataDir, 'import.journal');
}

export interface MirrorOptions extends Pick<CacheOptions, 'now'> {
  /** With http.workers: their metrics at scrape time, summed into /metrics with this process's. */
  peerMetrics?: () => Promise<MetricsJson[]>;
}

export async function createMirror(config: Config, log: Logger, options: MirrorOptions = {}): Promise<Mirror> {
  // Unreadable TLS files fail the start before anything touches the data directory.
  const tls = config.tls && { cert: await readFile(config.tls.cert), key: await readFile(config.tls.key) };
  // So does an unreadable htpasswd file: a mirror meant to be private never starts open.
  const auth = config.auth && (await ClientAuth.open(config.auth, log.child({ module: 'auth' }), options.now));
  const cache = await openCache(config, log, options);
  startBlobTable(cache.index, config, log);
  const { metrics, db, retention, registries } = cache;
  const flush = (): Promise<void> => cache.flush();
  const summary = config.status.page ? configSummary(config, registriesOf(config).list) : undefined;
  const status = summary ? await openStatus(config, cache, { auth, summary, now: options.now }) : undefined;
  const admin = adminOperations(config, cache);
  const adminRoutes = createAdminRoutes(admin, { tmpDir: join(config.dataDir, 'tmp') });
  let adminSocket: AdminSocket | undefined;
  const handler = createRoutes({
      readiness: async () => {
        const index = db.status;
        const writable = await access(join(config.dataDir, 'tmp'), constants.W_OK).then(
          () => true,
          () => false,
        );
        const upstreams = [...registries.values()].map((r): [string, object] => [r.name, r.client ? { breaker: r.client.breaker.state } : { offline: true }]);
        // One registry keeps the answer's old shape; several are listed by name.
        const upstream = upstreams.length === 1 ? upstreams[0]?.[1] : Object.fromEntries(upstreams);
        return { ready: index === 'open' && writable, index, dataDirWritable: writable, upstream };
      },
      registries,
      defaultRegistry: cache.defaultRegistry,
      metrics,
      registry: options.peerMetrics ? summedWith(metrics.registry, options.peerMetrics) : metrics.registry,
      auth,
      sendTimeout: config.http.idleTimeout,
      console: consoleRoutes(adminRoutes, config.admin.token, status?.handler),
  });
  const server = new RegistryServer({ handler, log, metrics, tls, limits: config.http });
  let primarySocket: RegistryServer | undefined;
  const startAdminSocket = async (): Promise<void> => {
    if (!config.admin.socket) return;
    const socketLog = log.child({ module: 'admin', via: 'socket' });
    adminSocket = await startAdmin({ dataDir: config.dataDir, handler: adminRoutes, log: socketLog, metrics, limits: config.http });
  };
  const flushTimer = setInterval(() => void flush(), STATS_FLUSH_MS);
  flushTimer.unref();
  // A quota lowered since the last run is enforced at start, not at the first download.
  retention.enforceQuota().catch((err: unknown) => log.warn({ err }, 'eviction failed'));
  const gc = async (): Promise<GcReport> => {
    await flush();
    const report = await retention.gc({ dryRun: false });
    log.info({ removed: report.removed.length, bytes: report.bytes, reachable: report.reachable }, 'garbage collection');
    return report;
  };
  const gcTimer = config.cache.gcInterval !== 'off' ? setInterval(() => void gc().catch((err: unknown) => log.warn({ err }, 'garbage collection failed')), config.cache.gcInterval) : undefined;
  gcTimer?.unref();
  return {
    server,
    metrics,
    async listen() {
      // The socket first: once the port answers, the CLI can already administer the mirror.
      await startAdminSocket();
      const address = await server.listen(config.listen.host, config.listen.port);
      // Port 0 picks one: the status page shows where the mirror really listens.
      if (summary) summary.listen = `${address.host}:${address.port}`;
      return address;
    },
    async listenPrimary(connections) {
      await startAdminSocket();
      const path = join(config.dataDir, PRIMARY_SOCKET);
      if (Buffer.byteLength(path) > MAX_SOCKET_PATH) throw new ConfigError(`http.workers needs a Unix socket at ${path}: the path is too long (use a shorter dataDir)`);
      // Requests come only from the workers, already admitted and timed there: no request timeout, no access log.
      const limits = { ...config.http, maxConnections: connections };
      primarySocket = new RegistryServer({ handler, log, metrics, limits, requestTimeout: 0, forwarded: true });
      await listenPrivate(primarySocket, path);
      if (summary) summary.listen = `${config.listen.host}:${config.listen.port}`;
      return path;
    },
    touch(digests) {
      const now = Date.now();
      for (const digest of digests) cache.index.touch(digest, now);
    },
    retention,
    status,
    admin,
    get adminSocket() {
      return adminSocket?.path;
    },
    gc,
    async close() {
      clearInterval(flushTimer);
      if (gcTimer) clearInterval(gcTimer);
      status?.close();
      await Promise.all([server.close(config.shutdownTimeout), primarySocket?.close(config.shutdownTimeout), adminSocket?.close(config.shutdownTimeout)]);
      if (primarySocket) await rm(join(config.dataDir, PRIMARY_SOCKET), { force: true });
      // A seed or import whose client left still writes: the index closes after it (bounded), not under it.
      await admin.drain(config.shutdownTimeout);
      await cache.close();
    },
  };
}

/** The status page and its JSON API over the cache's parts (issue 15). */
function openStatus(config: Config, cache: Cache, o: { auth: ClientAuth | undefined; summary: ConfigSummary; now: (() => number) | undefined }): Promise<StatusConsole> {
  const { auth, summary, now } = o;
  const { metrics, fills, index, retention, tags, pins, store } = cache;
  const { list } = registriesOf(config);
  return openStatusConsole({
    metrics,
    upstreams: [...cache.registries.values()].map((r) => ({
      name: r.name,
      url: list.find((c) => c.name === r.name)?.url ?? '',
      offline: r.offline,
      rateLimit: r.rateLimit,
      breaker: r.client?.breaker,
    })),
    fills,
    index,
    retention,
    quotaBytes: config.cache.maxBytes,
    config: summary,
    images: { tags, index, store, pins, configPins: config.cache.pins },
    auth,
    now,
  });
}
