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
import {
  DOCKER_HUB,
  DOCKER_HUB_ALIASES,
  parseDigest,
  parseManifestReference,
  parseRepository,
  type Repository,
} from '../registry/reference.js';
import { OFFLINE_NOTE } from '../upstream/offline.js';
import type { Upstream } from '../upstream/upstream.js';
import { header, type RequestContext } from './context.js';
import { contentRange, parseRange } from './range.js';
import { sendFileRange } from './send-file.js';
import type { Handler } from './server.js';

export interface Readiness {
  ready: boolean;
  [check: string]: unknown;
}

export interface RouteDeps {
  /** For /readyz: index open, data directory writable, upstream breaker state. */
  readiness: () => Promise<Readiness>;
  blobs: BlobCache;
  manifests: ManifestCache;
  tagLists: TagLists;
  upstream: Upstream;
  metrics: Metrics;
  registry: Registry;
}

const API_VERSION = { 'docker-distribution-api-version': 'registry/2.0' } as const;
/** /v2/<name>/<endpoint>/<reference>: the name may hold slashes, the reference may not. */
const REPO_ROUTE = /^\/v2\/(.+)\/(manifests|blobs|tags)\/([^/]+)$/;
const READ_METHODS = new Set(['GET', 'HEAD']);
/** Digests never change: clients and proxies may keep them for a year. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

export function createRoutes(deps: RouteDeps): Handler {
  return async (ctx) => {
    const { path, method } = ctx;
    if (path === '/healthz') return sendText(ctx, 200, 'ok\n', 'text/plain');
    if (path === '/readyz') {
      const readiness = await deps.readiness();
      return sendText(ctx, readiness.ready ? 200 : 503, JSON.stringify(readiness), 'application/json');
    }
    if (path === '/metrics') {
      return sendText(ctx, 200, await deps.registry.metrics(), deps.registry.contentType);
    }
    if (!path.startsWith('/v2/') && path !== '/v2') throw new RegistryError('NOT_FOUND', 'no such endpoint');
    if (!READ_METHODS.has(method)) {
      throw new RegistryError('UNSUPPORTED', 'this mirror is read-only', { headers: { allow: 'GET, HEAD' } });
    }
    if (path === '/v2/' || path === '/v2') return sendText(ctx, 200, '{}', 'application/json');
    const match = REPO_ROUTE.exec(path);
    if (!match) {
      if (path.includes('/blobs/uploads')) throw new RegistryError('UNSUPPORTED', 'this mirror is read-only');
      throw new RegistryError('NOT_FOUND', 'no such endpoint');
    }
    const [, name = '', endpoint, reference = ''] = match;
    checkNamespace(ctx.query, deps.upstream.name);
    const repo = parseRepository(name);
    if (endpoint === 'manifests') return serveManifest(deps, ctx, repo, decode(reference));
    if (endpoint === 'blobs') return serveBlob(deps, ctx, repo, decode(reference));
    if (reference === 'list' && method === 'GET') return serveTags(deps, ctx, repo);
    throw new RegistryError('NOT_FOUND', 'no such endpoint');
  };
}

async function serveManifest(deps: RouteDeps, ctx: RequestContext, repo: Repository, reference: string) {
  ctx.kind = 'manifest';
  const parsed = parseManifestReference(reference);
  const accept = acceptClass(ctx.req.headers.accept);
  const withBody = ctx.method === 'GET';
  const manifest =
    'digest' in parsed
      ? await deps.manifests.byDigest(repo, parsed.digest, accept, withBody, ctx)
      : await deps.manifests.byTag(repo, parsed.tag, accept, withBody, { client: ctx });
  ctx.cache = manifest.source;
  deps.metrics.cacheRequests.inc({ kind: 'manifest', result: manifest.source === 'stale' ? 'hit' : manifest.source });
  sendManifest(ctx, manifest);
}

function sendManifest(ctx: RequestContext, manifest: ManifestAnswer): void {
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

async function serveBlob(deps: RouteDeps, ctx: RequestContext, repo: Repository, reference: string) {
  ctx.kind = 'blob';
  const digest = parseDigest(reference);
  if (ctx.method === 'HEAD') {
    const meta = await deps.blobs.head(repo, digest, ctx);
    if (!meta) throw blobUnknown(repo, digest, deps.upstream.offline);
    ctx.cache = meta.source;
    ctx.res.writeHead(200, {
      ...API_VERSION,
      ...blobHeaders(digest, meta.mediaType),
      ...(meta.size === undefined ? {} : { 'content-length': meta.size }),
    });
    ctx.res.end();
    return;
  }
  const blob = await deps.blobs.get(repo, digest);
  if (!blob) throw blobUnknown(repo, digest, deps.upstream.offline);
  ctx.cache = blob.source;
  await sendBlob(deps, ctx, digest, blob);
}

async function sendBlob(deps: RouteDeps, ctx: RequestContext, digest: string, blob: BlobHandle) {
  const range = parseRange(header(ctx.req, 'range'), blob.size);
  const headers = { ...API_VERSION, ...blobHeaders(digest, blob.mediaType) };
  if (range.kind === 'unsatisfiable') {
    await blob.release();
    throw new RegistryError('RANGE_INVALID', 'requested range not satisfiable', {
      headers: { 'content-range': `bytes */${blob.size ?? '*'}` },
    });
  }
  // Counted here, not before the range check: a refused range is counted once, as an error, by the server.
  deps.metrics.cacheRequests.inc({ kind: 'blob', result: blob.source });
  let length = blob.size;
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
  let sent = 0;
  if (blob.readAt) {
    // A verified local file: pooled positional reads, no stream machinery (see send-file.ts).
    const start = range.kind === 'partial' ? range.range.start : 0;
    const end = range.kind === 'partial' ? range.range.end : (blob.size as number) - 1;
    try {
      sent = await sendFileRange(ctx.res, blob.readAt, start, end);
      ctx.res.end();
    } finally {
      await blob.release();
    }
  } else {
    // Headers go out now, before the first body byte: containerd gives up after 30 s without them.
    if ('flushHeaders' in ctx.res) ctx.res.flushHeaders();
    const body = blob.read(range.kind === 'partial' ? range.range : undefined);
    body.on('data', (chunk: Buffer) => (sent += chunk.length));
    try {
      await pipeline(body, ctx.res);
    } catch (err) {
      // A client may hang up right after the last byte, before the response formally ends: that is a success.
      if (length === undefined || sent < length) throw err;
    }
  }
  ctx.bytes = sent;
  deps.metrics.servedBytes.inc({ source: blob.source === 'hit' ? 'cache' : 'upstream' }, sent);
}

async function serveTags(deps: RouteDeps, ctx: RequestContext, repo: Repository) {
  ctx.kind = 'tags';
  const list = await deps.tagLists.list(repo, ctx.query, ctx);
  ctx.cache = list.source;
  deps.metrics.cacheRequests.inc({ kind: 'tags', result: list.source === 'stale' ? 'hit' : list.source });
  ctx.res.writeHead(200, {
    ...API_VERSION,
    'content-type': 'application/json',
    'content-length': list.body.length,
    ...(list.link ? { link: list.link } : {}),
  });
  ctx.bytes = list.body.length;
  ctx.res.end(list.body);
}

function blobHeaders(digest: string, mediaType: string) {
  return {
    'content-type': mediaType,
    'docker-content-digest': digest,
    etag: `"${digest}"`,
    'accept-ranges': 'bytes',
    'cache-control': IMMUTABLE,
  };
}

function sendText(ctx: RequestContext, status: number, body: string, contentType: string): Promise<void> {
  const length = Buffer.byteLength(body);
  ctx.res.writeHead(status, { ...API_VERSION, 'content-type': contentType, 'content-length': length });
  if (ctx.method === 'HEAD') {
    ctx.res.end();
  } else {
    ctx.bytes = length;
    ctx.res.end(body);
  }
  return Promise.resolve();
}

/** containerd names the registry it wants in `?ns=`: content of another registry is unknown here. */
function checkNamespace(query: string, upstreamName: string): void {
  if (query === '') return;
  const ns = new URLSearchParams(query).get('ns');
  if (ns === null || ns === upstreamName) return;
  if (upstreamName === DOCKER_HUB && DOCKER_HUB_ALIASES.has(ns)) return;
  throw new RegistryError('NAME_UNKNOWN', `this mirror serves ${upstreamName} only`, { detail: { ns } });
}

/** References are percent-decoded (a client may send `sha256%3A…`); names are not (see RequestContext.path). */
function decode(reference: string): string {
  try {
    return decodeURIComponent(reference);
  } catch {
    return reference;
  }
}

function blobUnknown(repo: Repository, digest: string, offline = false): RegistryError {
  const message = offline ? `blob unknown to registry: ${OFFLINE_NOTE}` : 'blob unknown to registry';
  return new RegistryError('BLOB_UNKNOWN', message, { detail: { name: repo, digest } });
}
