// The one Config schema: every key, its type and its default. Unknown keys are rejected (strict objects).
import { z } from 'zod';
import { canonicalRegistry, parseImageReference } from '../registry/reference.js';
import { parseDuration, parseListen, parseSize } from './units.js';

const duration = z.string().transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a duration like "30s", "5m" or "1h", found "${text}"` });
    return z.NEVER;
  }
  return ms;
});

/** "200GiB", "500MB" or a byte count; "none": no quota (undefined). "0" still means none, as it did before "none". */
const quota = z.union([z.string(), z.int().min(0)]).transform((value, ctx): number | undefined => {
  if (value === 'none') return undefined;
  const bytes = typeof value === 'number' ? value : parseSize(value);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a size like "200GiB" or "500MB", or "none", found "${String(value)}"` });
    return z.NEVER;
  }
  return bytes === 0 ? undefined : bytes;
});

/** A period in ms, or "off". "0s" still means off, as it did before "off". */
const interval = z.string().transform((text, ctx): number | 'off' => {
  if (text === 'off') return 'off';
  const ms = parseDuration(text);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a duration like "30s", "5m" or "1h", or "off", found "${text}"` });
    return z.NEVER;
  }
  return ms === 0 ? 'off' : ms;
});

const imageReference = z.string().refine(
  (text) => {
    try {
      parseImageReference(text);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'expected an image reference such as "alpine:3.19" or "docker.io/library/nginx@sha256:…"' },
);

const listen = z.string().transform((text, ctx) => {
  const parsed = parseListen(text);
  if (!parsed) {
    ctx.addIssue({ code: 'custom', message: `expected host:port such as "127.0.0.1:5000", found "${text}"` });
    return z.NEVER;
  }
  return parsed;
});

/** An http(s) origin, or "none": an air-gapped mirror with no upstream at all. */
const upstreamUrl = z.string().transform((text, ctx) => {
  if (text === 'none') return text;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    ctx.addIssue({ code: 'custom', message: `expected an http(s) URL, found "${text}"` });
    return z.NEVER;
  }
  const extra = url.pathname.replace(/\/+$/, '') !== '' || url.search !== '' || url.hash !== '' || url.username !== '';
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || extra) {
    // Credentials go in their own keys, never in the URL (it is logged).
    ctx.addIssue({ code: 'custom', message: `expected an http(s) origin without path, query or credentials, found "${url.protocol}//${url.host}${url.pathname}"` });
    return z.NEVER;
  }
  return url.origin;
});

const registryName = z.string().regex(/^[a-z0-9]+(?:[.-][a-z0-9]+)*(?::\d{1,5})?$/, 'expected a registry host such as "ghcr.io" or "registry.example:5000"');
const tagRules = z.array(z.strictObject({ match: z.string().min(1), ttl: duration }));
/**
 * Repositories this registry serves, as globs over the repository path (`library/*`, `myorg/*`; `*` matches
 * anything, slashes included). Absent: every repository. Anything else is 403 DENIED, never asked upstream.
 */
const allowList = z.array(z.string().min(1)).optional();

/** One more registry behind the same port; every key it leaves out comes from `upstream` (and `tags`). */
const upstreamEntry = z.strictObject({
  /** Registry host as clients name it (`ghcr.io`); keys its tag records, `?ns=` and the path prefix. */
  name: registryName,
  /** Default: https://<name>; for docker.io, upstream.url. */
  url: upstreamUrl.optional(),
  credentials: z.strictObject({ username: z.string().min(1), password: z.string().min(1) }).optional(),
  authRealms: z.array(z.string().regex(/^[a-z0-9.-]+(:\d+)?$/)).optional(),
  connections: z.int().min(1).max(1024).optional(),
  connectTimeout: duration.optional(),
  headersTimeout: duration.optional(),
  bodyTimeout: duration.optional(),
  fillTimeout: duration.optional(),
  breakerFailures: z.int().min(1).max(1000).optional(),
  breakerCooldown: duration.optional(),
  allow: allowList,
  tags: z.strictObject({ ttl: duration.optional(), rules: tagRules.optional() }).optional(),
});

/**
 * A repository pattern with its registry (`docker.io/library/*`, `ghcr.io/myorg/*`); `*` matches anything, `/`
 * included. A first component that names no registry would never match, so it is refused here.
 */
const repositoryPattern = z
  .string()
  .regex(/^[a-z0-9*][a-z0-9._:*/-]*$/, 'expected a repository pattern such as "docker.io/library/*"')
  .refine((pattern) => {
    const first = pattern.split('/')[0] ?? '';
    return first.includes('*') || first.includes('.') || first.includes(':') || first === 'localhost';
  }, 'a repository pattern starts with its registry: "docker.io/library/*", not "library/*"');

/** Client authentication (issue 14). Absent: every client may pull everything, as before. */
const auth = z.strictObject({
  /** bcrypt lines as `htpasswd -B` writes them; reloaded when the file changes. */
  htpasswd: z.string().min(1),
  /** What clients without credentials may pull; a request outside it is asked to log in (401). */
  anonymous: z.array(repositoryPattern).default([]),
  /** What every user of the htpasswd file may pull. */
  authenticated: z.array(repositoryPattern).default(['*']),
  /** What one user may pull besides `authenticated` and `anonymous`; outside all three: 403 DENIED. */
  users: z.record(z.string().regex(/^[^:\s]+$/, 'expected an htpasswd user name'), z.array(repositoryPattern)).default({}),
  /** /metrics asks for a user of the file too (/healthz and /readyz never do). */
  metrics: z.boolean().default(false),
});

export const configSchema = z.strictObject({
  /** Address the registry API listens on. */
  listen: listen.prefault('127.0.0.1:5000'),
  /** Where blobs, manifests and the index live. */
  dataDir: z.string().min(1).default('./data'),
  upstream: z
    .strictObject({
      /** Registry origin; Docker Hub by default. */
      url: upstreamUrl.prefault('https://registry-1.docker.io'),
      /** Name that keys tag records, so that more upstreams can share one index later. */
      name: z.string().regex(/^[a-z0-9.-]+(:\d+)?$/).default('docker.io'),
      /** Concurrent connections to the upstream origin. */
      connections: z.int().min(1).max(1024).default(16),
      connectTimeout: duration.prefault('10s'),
      /** Time to wait for upstream response headers. */
      headersTimeout: duration.prefault('30s'),
      /** Longest silence between two chunks of an upstream body. */
      bodyTimeout: duration.prefault('30s'),
      /** Upper bound for one whole blob download, which no client owns. */
      fillTimeout: duration.prefault('1h'),
      /** Docker Hub account for higher pull limits; absent means anonymous. Never logged or exposed. */
      credentials: z.strictObject({ username: z.string().min(1), password: z.string().min(1) }).optional(),
      /**
       * Token realm hosts (`host` or `host:port`), besides the upstream's exact origin (and auth.docker.io for
       * Docker Hub), that may receive the credentials. A realm
       * elsewhere gets anonymous token requests only, so a hostile upstream cannot harvest them.
       */
      authRealms: z.array(z.string().regex(/^[a-z0-9.-]+(:\d+)?$/)).default([]),
      /**
       * After this many consecutive failures upstream is not asked for `cooldown`: refused, timeout and 502/503/504
       * count each; any other 5xx once per repository (one broken repository must not shut out the rest).
       */
      breakerFailures: z.int().min(1).max(1000).default(3),
      breakerCooldown: duration.prefault('30s'),
      allow: allowList,
    })
    .prefault({}),
  /**
   * Several registries behind one endpoint, chosen by containerd's `?ns=` or a path prefix
   * (`/v2/ghcr.io/owner/image/…`). Absent: Docker Hub alone, from `upstream`.
   */
  upstreams: z
    .array(upstreamEntry)
    .min(1)
    .refine((list) => new Set(list.map((u) => canonicalRegistry(u.name))).size === list.length, {
      message: 'each registry may be named once (index.docker.io and registry-1.docker.io are docker.io)',
    })
    .optional(),
  tags: z
    .strictObject({
      /** How long a tag's digest is trusted without asking upstream. */
      ttl: duration.prefault('1h'),
      /** Ordered: the first rule whose pattern matches `repository:tag` sets the TTL. `*` matches anything. */
      rules: tagRules.prefault([{ match: '*:latest', ttl: '5m' }]),
      /** Past the TTL, answer from cache at once and revalidate in the background. */
      staleWhileRevalidate: z.boolean().default(false),
      /** How old (since upstream last confirmed it) a cached tag may be and still be served when upstream fails. */
      maxStale: duration.prefault('7d'),
      /** How long a 404 for a tag or repository is remembered. */
      notFoundTtl: duration.prefault('1m'),
      /**
       * When upstream answers 404 for a tag the mirror holds: false drops the tag (content is left to GC); true
       * keeps serving the last known digest, so a deleted or renamed upstream tag does not break pulls.
       */
      keepDeleted: z.boolean().default(false),
    })
    .prefault({}),
  rateLimit: z
    .strictObject({
      /** At or under this many remaining pulls, cached tags are served without revalidation until the window resets. */
      reserve: z.int().min(0).default(10),
      /**
       * Each client address's share of upstream pulls (manifest GETs that miss the cache) per window, so one
       * client cannot spend the site's allowance; "off" (the default) leaves clients unlimited.
       */
      perClient: z.union([z.literal('off'), z.strictObject({ pulls: z.int().min(1), window: duration })]).default('off'),
    })
    .prefault({}),
  cache: z
    .strictObject({
      /** Hot metadata (blob, manifest and tag records) kept in memory. */
      metadataEntries: z.int().min(100).max(10_000_000).default(50_000),
      /**
       * Blobs whose presence, size and type are kept in a compact table (42 bytes each: 2,000,000 ≈ 80 MiB) so
       * that a blob HEAD reads no disk; built in the background after start. An index with more records than
       * this keeps none, and HEADs outside the hot metadata read the index.
       */
      blobTableEntries: z.int().min(0).max(50_000_000).default(2_000_000),
      /** Manifest bodies kept in memory, by total bytes. */
      manifestMemoryBytes: z.int().min(0).default(64 * 2 ** 20),
      /**
       * Blob downloads started ahead of the client, at most this many at once, when an image manifest comes from
       * upstream for a client (its config and layers; issue 16); 0 (the default) turns prefetching off. Off by
       * default: on loopback it saved no measurable time (bench/TRACE-cold.md), and a client that reads only the
       * manifest and config (skopeo inspect, Renovate, crane config) would make the mirror download every layer.
       */
      prefetchBlobs: z.int().min(0).max(64).default(0),
      /** Quota for cached content ("200GiB"), or "none". Above the high mark, least recently used content goes. */
      maxBytes: quota.prefault('none'),
      /** Fraction of maxBytes where eviction starts... */
      highWatermark: z.number().gt(0).max(1).default(0.9),
      /** ...and where it stops. */
      lowWatermark: z.number().gt(0).max(1).default(0.8),
      /** Images kept whatever the quota says and never collected, with all they reference. */
      pins: z.array(imageReference).default([]),
      /** How often the server collects content no cached tag or pin reaches, or "off". */
      gcInterval: interval.prefault('1h'),
      /** Unreachable content created or pulled within this period is kept. */
      gcGrace: duration.prefault('24h'),
    })
    .refine((cache) => cache.lowWatermark < cache.highWatermark, { message: 'lowWatermark must be below highWatermark', path: ['lowWatermark'] })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
  /** Limits on client connections, HTTP/1.1 and HTTP/2 alike: a hostile or broken client cannot hold them forever. */
  http: z
    .strictObject({
      /** A client must send a request's head (and h2 its connection preface) within this time; else 408 / closed. */
      headersTimeout: duration.prefault('30s'),
      /** A connection with nothing in flight, or a response the client stopped reading, is closed after this. */
      idleTimeout: duration.prefault('60s'),
      /** Client connections open at once; more are refused at accept. */
      maxConnections: z.int().min(1).max(1_000_000).default(1024),
      /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: streams one connection may have open at once. */
      maxStreamsPerConnection: z.int().min(1).max(10_000).default(100),
      /**
       * Processes serving the port (issue 16.3): 1 is one process; N (or "auto": one per core) forks N workers that
       * share the port, serve stored blobs and cached manifests by digest themselves and forward the rest to the
       * one primary process that owns the index, downloads, retention and the admin socket.
       */
      workers: z
        // REGMIRROR_HTTP_WORKERS arrives as text.
        .preprocess((v) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v), z.union([z.int().min(1).max(256), z.literal('auto')]))
        .default(1),
    })
    .prefault({}),
  /** Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with this PEM certificate chain and key. Absent: plain HTTP. */
  tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
  auth: auth.optional(),
  /** The status page at `/` and its read-only JSON API under `/api/v1/` (issue 15). */
  status: z
    .strictObject({
      /** false: `/` and `/api/v1/` answer 404 (the admin socket still works). */
      page: z.boolean().default(true),
    })
    .prefault({}),
  /** Live administration of the running mirror (issue 15): pins, deletes, GC, seed, export, import. */
  admin: z
    .strictObject({
      /** A Unix socket in the data directory (mode 0600), which the CLI commands use while the mirror runs. */
      socket: z.boolean().default(true),
      /**
       * Absent: no administration over the network. Set: `/api/v1/admin/` on the mirror's port takes
       * `Authorization: Bearer <token>`. At least 16 characters; never logged or shown.
       */
      token: z.string().min(16, 'admin.token must be at least 16 characters').optional(),
    })
    .prefault({}),
  /** How long in-flight responses may take to finish on SIGTERM before the process exits anyway. */
  shutdownTimeout: duration.prefault('10s'),
});

export type ConfigInput = z.input<typeof configSchema>;
export type Config = Readonly<z.output<typeof configSchema>>;
export type UpstreamConfig = Config['upstream'];
export type TagsConfig = Config['tags'];
export type AuthConfig = NonNullable<Config['auth']>;
export type HttpConfig = Config['http'];
export type AdminConfig = Config['admin'];
