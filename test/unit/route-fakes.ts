// Fake route dependencies for in-process tests of the route table: a mirror whose caches answer from memory,
// a request context with a response that records what was written (or throws where a test says so).
import { Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { BlobHandle, BlobMeta } from '../../src/cache/blobs.js';
import type { RequestContext } from '../../src/http/context.js';
import type { MirroredRegistry, RouteDeps } from '../../src/http/routes.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { tagPage } from '../../src/registry/tag-page.js';

export interface FakeBlob {
  handle: BlobHandle;
  released: () => number;
}

/** A stored blob of `size` zero bytes, read by position; counts its releases. */
export function fakeBlob(size: number, mediaType = 'application/octet-stream'): FakeBlob {
  let released = 0;
  const handle: BlobHandle = {
    size,
    mediaType,
    manifest: false,
    source: 'hit',
    read: () => {
      throw new Error('read by position only');
    },
    readAt: (_buffer, length, position) => Promise.resolve(Math.max(0, Math.min(length, size - position))),
    release: () => Promise.resolve(void released++),
  };
  return { handle, released: () => released };
}

export function fakeMirror(name: string, blob: () => BlobHandle | undefined, head?: BlobMeta): MirroredRegistry {
  return {
    name,
    offline: false,
    allows: () => true,
    blobs: {
      get: () => Promise.resolve(blob()),
      head: () => Promise.resolve(head && { ...head, source: 'hit' }),
    } as unknown as MirroredRegistry['blobs'],
    manifests: {
      byDigest: () => Promise.resolve({ mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 2, digest: `sha256:${'a'.repeat(64)}`, bytes: Buffer.from('{}'), source: 'hit' }),
      byTag: () => Promise.resolve({ mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 2, digest: `sha256:${'a'.repeat(64)}`, bytes: Buffer.from('{}'), source: 'hit' }),
    } as unknown as MirroredRegistry['manifests'],
    tagLists: {
      list: (repo: string, query: string) => Promise.resolve({ ...tagPage(repo, ['a', 'b', 'c'], query), source: 'hit' }),
    } as unknown as MirroredRegistry['tagLists'],
  };
}

export function fakeDeps(blob: () => BlobHandle | undefined = () => undefined, head?: BlobMeta): RouteDeps {
  const registry = new Registry();
  const hub = fakeMirror('docker.io', blob, head);
  return {
    readiness: () => Promise.resolve({ ready: true }),
    registries: new Map([
      ['docker.io', hub],
      ['ghcr.io', fakeMirror('ghcr.io', blob)],
    ]),
    defaultRegistry: hub,
    sendTimeout: 60_000,
    metrics: new Metrics(registry),
    registry,
  };
}

export interface FakeResponse {
  status: number | undefined;
  headers: Record<string, unknown>;
  ended: boolean;
}

/** A request context whose response records its status and headers; `writeHead` may be made to throw. */
export function fakeContext(method: string, target: string, headers: Record<string, string> = {}, writeHead?: () => never) {
  const q = target.indexOf('?');
  const written: FakeResponse = { status: undefined, headers: {}, ended: false };
  const res = {
    writeHead: (status: number, h: Record<string, unknown>) => {
      if (writeHead) writeHead();
      written.status = status;
      written.headers = h;
      return res;
    },
    write: (_chunk: Buffer, done?: () => void) => {
      done?.();
      return true;
    },
    end: () => {
      written.ended = true;
      return res;
    },
    once: () => res,
    on: () => res,
    off: () => res,
    removeListener: () => res,
    destroyed: false,
    writableEnded: false,
  };
  const ctx = {
    req: { headers, method },
    res,
    log: { child: () => ctx.log, info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined } as unknown as Logger,
    method,
    path: q === -1 ? target : target.slice(0, q),
    query: q === -1 ? '' : target.slice(q),
    signal: new AbortController().signal,
    cache: undefined,
    kind: undefined,
    registry: undefined,
    bytes: 0,
  } as unknown as RequestContext;
  return { ctx, written };
}
