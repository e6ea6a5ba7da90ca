// The route table of the registry API v2 pull side (distribution-spec "Pull"), plus health and metrics.
import { pipeline } from 'node:stream/promises';
import type { Registry } from 'prom-client';
import type { BlobCache, BlobHandle } from '../cache/blobs.js';
import type { ManifestAnswer, ManifestCache } from '../cache/manifests.js';
import type { TagLists } from '../cache/tag-lists.js';
import type { Metrics } from '../metrics/metrics.js';
import { rangeLength } from '../registry/byte-range.js';
import { RegistryError } from '../registry/errors.js';
import { acceptClass } from '../registry/media-types.js';
import { parseDigest, parseManifestReference, type Repository } from '../registry/reference.js';
import { OFFLINE_NOTE } from '../upstream/offline.js';
import type { ClientAuth } from './client-auth.js';
import { header, sendBody, type RequestContext } from './context.js';
import { contentRange, parseRange } from './range.js';
import { chooseRegistry, nextPageHere } from './registry-choice.js';
import { SendTimeoutError, sendFileRange } from './send-file.js';
import type { Handler } from './server.js';

export interface Readiness {
  ready: boolean;
  [check: string]: unknown;
}

/** What the front of the port knows of a registry: enough to route a request and admit it (workers have no more). */
export interface RegistryFront {
  readonly name: string;
  /** No upstream: a miss says the mirror is offline. */
  readonly offline: boolean;
  /** The registry's allow list (config `allow`): false for a repository this mirror does not serve. */
  allows(repo: Repository): boolean;
}

/** One registry behind this port: what its routes answer from. */
export interface MirroredRegistry extends RegistryFront {
  blobs: BlobCache;
  manifests: ManifestCache;
  tagLists: TagLists;
}

export interface RouteDeps {
  /** For /readyz: index open, data directory writable, upstream breaker state. */
  readiness: () => Promise<Readiness>;
  /** By registry name (`docker.io`, `ghcr.io`). */
  registries: ReadonlyMap<string, MirroredRegistry>;
  /** Asked when a request names no registry (dockerd's `registry-mirrors` only ever means Docker Hub). */
  defaultRegistry: MirroredRegistry;
  metrics: Metrics;
  /** What /metrics renders: this process's Registry, or (http.workers) it summed with the workers'. */
  registry: Pick<Registry, 'metrics' | 'contentType'>;
  /** Client authentication and access rules (`auth`); absent: every client may pull everything. */
  auth?: ClientAuth | undefined;
  /** A stored blob whose client takes no bytes for this long is cut (config `http.idleTimeout`). */
  sendTimeout: number;
  /**
   * The status page (`/`) and the JSON API (`/api/v1/…`): everything that is not the registry API or an
   * operational probe. Absent: those paths are 404.
   */
  console?: Handler | undefined;
}

export const API_VERSION = { 'docker-distribution-api-version': 'registry/2.0' } as const;
/** /v2/<name>/<endpoint>/<reference>: the name may hold slashes, the reference may not. */
export const REPO_ROUTE = /^\/v2\/(.+)\/(manifests|blobs|tags)\/([^/]+)$/;
const READ_METHODS = new Set(['GET', 'HEAD']);
const OPERATIONAL = new Set(['/healthz', '/readyz', '/metrics']);
/** Digests never change: clients and proxies may keep them for a year. */
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** What node:http lets through in a header value (its checkInvalidHeaderChar), and not empty. */
const HEADER_SAFE = /^[\t\x20-\x7e\x80-\xff]+$/;

export function createRoutes(deps: RouteDeps): Handler {
  return async (ctx) => {
    const { path, method } = ctx;
    // Probes and scrapers read; nothing else is meant for these paths (issue 14, finding 10).
    if (OPERATIONAL.has(path) && !READ_METHODS.has(method)) throw readOnly();
    if (path === '/healthz') return sendText(ctx, 200, 'ok\n', 'text/plain');
    if (path === '/readyz') {
      const readiness = await deps.readiness();
      return sendText(ctx, readiness.ready ? 200 : 503, JSON.stringify(readiness), 'application/json');
    }
    if (path === '/metrics') {
      if (deps.auth?.guardsMetrics) await deps.auth.check(ctx, { kind: 'metrics' });
      return sendText(ctx, 200, await deps.registry.metrics(), deps.registry.contentType);
    }
    if (!path.startsWith('/v2/') && path !== '/v2') {
      if (deps.console && (path === '/' || path.startsWith('/api/') || path.startsWith('/ui/'))) return deps.console(ctx);
      throw new RegistryError('NOT_FOUND', 'no such endpoint');
    }
    if (!READ_METHODS.has(method)) throw readOnly();
    if (path === '/v2/' || path === '/v2') {
      if (deps.auth) await deps.auth.check(ctx, { kind: 'root' });
      return sendText(ctx, 200, '{}', 'application/json');
    }
    const match = REPO_ROUTE.exec(path);
    if (!match) {
      if (path.includes('/blobs/uploads')) throw new RegistryError('UNSUPPORTED', 'this mirror is read-only');
      throw new RegistryError('NOT_FOUND', 'no such endpoint');
    }
    const [, name = '', endpoint, reference = ''] = match;
    const { mirror, repo, prefixed } = await admitRepository(deps, ctx, name);
    if (endpoint === 'manifests') return serveManifest(deps, ctx, mirror, repo, decode(reference));
    if (endpoint === 'blobs') return serveBlob(deps, ctx, mirror, repo, decode(reference));
    if (reference === 'list' && method === 'GET') return serveTags(deps, ctx, mirror, repo, prefixed);
    throw new RegistryError('NOT_FOUND', 'no such endpoint');
  };
}

/**
 * Which registry and repository a request is for, and whether this client may pull it there: the one decision,
 * made by the single process and by every worker (http/workers/front.ts) alike, before anything is served.
 */
export async function admitRepository<R extends RegistryFront>(
  deps: { registries: ReadonlyMap<string, R>; defaultRegistry: R; auth?: ClientAuth | undefined },
  ctx: RequestContext,
  name: string,
): Promise<{ mirror: R; repo: Repository; prefixed: boolean }> {
  const chosen = chooseRegistry(deps, name, ctx.query);
  const { mirror, repo } = chosen;
  ctx.registry = mirror.name;
  // Before any cache or upstream work: a refused client learns nothing, not even whether content is cached;
  // and a mirror is no open proxy: an account's private repositories stay out unless listed (issue 14).
  if (deps.auth) await deps.auth.check(ctx, { kind: 'repository', registry: mirror.name, repo });
  if (!mirror.allows(repo)) throw new RegistryError('DENIED', 'repository not allowed by this mirror', { detail: { name: repo } });
  return chosen;
}

async function serveManifest(deps: RouteDeps, ctx: RequestContext, mirror: MirroredRegistry, repo: Repository, reference: string) {
  ctx.kind = 'manifest';
  const parsed = parseManifestReference(reference);
  const accept = acceptClass(ctx.req.headers.accept);
  const withBody = ctx.method === 'GET';
  const manifest =
    'digest' in parsed
      ? await mirror.manifests.byDigest(repo, parsed.digest, accept, withBody, ctx)
      : await mirror.manifests.byTag(repo, parsed.tag, accept, withBody, { client: ctx });
  answerManifest(deps, ctx, mirror.name, manifest);
}

/** Counts a manifest answer (cache result, pulls spared) and sends it: the single process's and a worker's. */
export function answerManifest(deps: Pick<RouteDeps, 'metrics'>, ctx: RequestContext, registry: string, manifest: ManifestAnswer): void {
  ctx.cache = manifest.source;
  deps.metrics.cacheRequests.inc({ registry, kind: 'manifest', result: manifest.source === 'stale' ? 'hit' : manifest.source });
  // Only a GET is a pull on Docker Hub; one answered by anything but this request's own upstream GET spared one.
  if (ctx.method === 'GET' && manifest.source !== 'miss') deps.metrics.pullsSpared.inc({ registry });
  sendManifest(ctx, manifest);
}

export function sendManifest(ctx: RequestContext, manifest: Omit<ManifestAnswer, 'source'>): void {
  ctx.res.writeHead(200, {
    ...API_VERSION,
    'content-type': manifest.mediaType,
    'content-length': manifest.size,
    'docker-content-digest': manifest.digest,
    etag: `"${manifest.digest}"`,
  });
  // A HEAD may have found the body in memory: it still sends none.
  if (manifest.bytes && ctx.method === 'GET') {
    ctx.bytes = manifest.size;
    ctx.res.end(manifest.bytes);
  } else {
    ctx.res.end();
  }
}

async function serveBlob(deps: RouteDeps, ctx: RequestContext, mirror: MirroredRegistry, repo: Repository, reference: string) {
  ctx.kind = 'blob';
  const digest = parseDigest(reference);
  if (ctx.method === 'HEAD') {
    const meta = await mirror.blobs.head(repo, digest, ctx);
    if (!meta) throw blobUnknown(repo, digest, mirror.offline);
    ctx.cache = meta.source;
    sendBlobHead(ctx, digest, meta.mediaType, meta.size);
    return;
  }
  const blob = await mirror.blobs.get(repo, digest, ctx);
  if (!blob) throw blobUnknown(repo, digest, mirror.offline);
  ctx.cache = blob.source;
  await sendBlob(deps, ctx, digest, blob);
}

/** A blob HEAD's answer: its headers, no body. */
export function sendBlobHead(ctx: RequestContext, digest: string, mediaType: string, size: number | undefined): void {
  ctx.res.writeHead(200, { ...API_VERSION, ...blobHeaders(digest, mediaType), ...(size === undefined ? {} : { 'content-length': size }) });
  ctx.res.end();
}

export async function sendBlob(deps: Pick<RouteDeps, 'metrics' | 'sendTimeout'>, ctx: RequestContext, digest: string, blob: BlobHandle) {
  const range = parseRange(header(ctx.req, 'range'), blob.size);
  const headers = { ...API_VERSION, ...blobHeaders(digest, blob.mediaType) };
  if (range.kind === 'unsatisfiable') {
    await blob.release();
    throw new RegistryError('RANGE_INVALID', 'requested range not satisfiable', {
      headers: { 'content-range': `bytes */${blob.size ?? '*'}` },
    });
  }
  // Counted here, not before the range check: a refused range is counted once, as an error, by the server.
  deps.metrics.cacheRequests.inc({ registry: ctx.registry, kind: 'blob', result: blob.source });
  let length = blob.size;
  try {
    if (range.kind === 'partial') {
      length = rangeLength(range.range);
      ctx.res.writeHead(206, {
        ...headers,
        'content-length': length,
        'content-range': contentRange(range.range, blob.size as number),
      });
    } else {
      ctx.res.writeHead(200, { ...headers, ...(length === undefined ? {} : { 'content-length': length }) });
    }
  } catch (err) {
    // Nothing has read the file yet, so nothing else will release it: a writeHead that threw (a stored media
    // type with CR/LF) leaked a file descriptor per request (issue 14, finding 9).
    await blob.release();
    throw err;
  }
  let sent = 0;
  if (blob.readAt) {
    // A verified local file: pooled positional reads, no stream machinery (see send-file.ts).
    const start = range.kind === 'partial' ? range.range.start : 0;
    const end = range.kind === 'partial' ? range.range.end : (blob.size as number) - 1;
    try {
      sent = await sendFileRange(ctx.res, blob.readAt, start, end, deps.sendTimeout);
      ctx.res.end();
    } finally {
      await blob.release();
    }
  } else {
    // Headers go out now, before the first body byte: containerd gives up after 30 s without them.
    if ('flushHeaders' in ctx.res) ctx.res.flushHeaders();
    const body = blob.read(range.kind === 'partial' ? range.range : undefined);
    // Backpressure bounds what a client that stops reading holds; this frees its connection too (as send-file).
    const stall = setTimeout(() => ctx.res.destroy(new SendTimeoutError(deps.sendTimeout)), deps.sendTimeout);
    body.on('data', (chunk: Buffer) => {
      sent += chunk.length;
      stall.refresh();
    });
    try {
      await pipeline(body, ctx.res);
    } catch (err) {
      // A client may hang up right after the last byte, before the response formally ends: that is a success.
      if (length === undefined || sent < length) throw err;
    } finally {
      clearTimeout(stall);
    }
  }
  ctx.bytes = sent;
  deps.metrics.servedBytes.inc({ registry: ctx.registry, source: blob.source === 'hit' ? 'cache' : 'upstream' }, sent);
}

async function serveTags(deps: RouteDeps, ctx: RequestContext, mirror: MirroredRegistry, repo: Repository, prefixed: boolean) {
  ctx.kind = 'tags';
  const list = await mirror.tagLists.list(repo, ctx.query, ctx);
  ctx.cache = list.source;
  deps.metrics.cacheRequests.inc({ registry: mirror.name, kind: 'tags', result: list.source === 'stale' ? 'hit' : list.source });
  const link = list.link === undefined ? undefined : nextPageHere(list.link, mirror.name, prefixed, ctx.query);
  ctx.res.writeHead(200, {
    ...API_VERSION,
    'content-type': 'application/json',
    'content-length': list.body.length,
    ...(link ? { link } : {}),
  });
  ctx.bytes = list.body.length;
  ctx.res.end(list.body);
}

export function blobHeaders(digest: string, mediaType: string) {
  return {
    // A record written before import checked media types may hold one no header can carry (CR/LF: a 500).
    'content-type': HEADER_SAFE.test(mediaType) ? mediaType : 'application/octet-stream',
    'docker-content-digest': digest,
    etag: `"${digest}"`,
    'accept-ranges': 'bytes',
    'cache-control': IMMUTABLE,
  };
}

function sendText(ctx: RequestContext, status: number, body: string, contentType: string): Promise<void> {
  sendBody(ctx, status, body, { ...API_VERSION, 'content-type': contentType });
  return Promise.resolve();
}

/** References are percent-decoded (a client may send `sha256%3A…`); names are not (see RequestContext.path). */
export function decode(reference: string): string {
  try {
    return decodeURIComponent(reference);
  } catch {
    return reference;
  }
}

function readOnly(): RegistryError {
  return new RegistryError('UNSUPPORTED', 'this mirror is read-only', { headers: { allow: 'GET, HEAD' } });
}

function blobUnknown(repo: Repository, digest: string, offline = false): RegistryError {
  const message = offline ? `blob unknown to registry: ${OFFLINE_NOTE}` : 'blob unknown to registry';
  return new RegistryError('BLOB_UNKNOWN', message, { detail: { name: repo, digest } });
}
