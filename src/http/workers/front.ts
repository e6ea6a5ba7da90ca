// A worker's front of the port (http.workers, issue 16.3): the same routing and the same admission (registry,
// client auth, allow list: routes.ts admitRepository) as the single process, then a thin backend. Content by
// digest that the primary has already served for this registry and repository is answered here: a blob from its
// verified file in the store, a manifest from memory. Everything else goes to the primary unchanged (forward.ts).
import { LRUCache } from 'lru-cache';
import type { BlobStore } from '../../cache/blob-store.js';
import type { BlobHandle } from '../../cache/blobs.js';
import type { Metrics } from '../../metrics/metrics.js';
import { isDigest, type Digest } from '../../registry/reference.js';
import type { ClientAuth } from '../client-auth.js';
import type { RequestContext } from '../context.js';
import { admitRepository, answerManifest, decode, REPO_ROUTE, sendBlob, sendBlobHead, type RegistryFront } from '../routes.js';
import type { Handler } from '../server.js';
import type { Forwarded, PrimaryLink } from './forward.js';

/** What the primary answered 200 for, per endpoint, registry, repository and digest; enough to answer it again here. */
interface Known {
  kind: 'blob' | 'manifest';
  mediaType: string;
  /** A manifest's length (for HEAD) and, once a GET brought it, its bytes. */
  size: number | undefined;
  bytes: Buffer | undefined;
}

/** Answers remembered per worker: entries, and manifest bytes in all. Bounded: it is a cache of the primary's. */
const KNOWN_ENTRIES = 20_000;
const KNOWN_BYTES = 16 * 1024 * 1024;
/** Larger manifests are always asked of the primary (an image index with hundreds of platforms is rare). */
const KEPT_MANIFEST_BYTES = 256 * 1024;

export interface WorkerFrontDeps {
  registries: ReadonlyMap<string, RegistryFront>;
  defaultRegistry: RegistryFront;
  auth?: ClientAuth | undefined;
  /** The shared store, read only: a file is there only under its verified digest (blob-store.ts). */
  store: Pick<BlobStore, 'open' | 'stat'>;
  primary: PrimaryLink;
  metrics: Metrics;
  sendTimeout: number;
  /** A digest answered here: the primary's retention must see the access (batched by the caller). */
  accessed(digest: Digest): void;
}

export function createWorkerRoutes(deps: WorkerFrontDeps): Handler {
  const known = new LRUCache<string, Known>({
    max: KNOWN_ENTRIES,
    maxSize: KNOWN_BYTES,
    sizeCalculation: (entry, key) => key.length + 64 + (entry.bytes?.length ?? 0),
  });
  return async (ctx) => {
    const match = ctx.method === 'GET' || ctx.method === 'HEAD' ? REPO_ROUTE.exec(ctx.path) : null;
    const endpoint = match?.[2];
    const digest = decode(match?.[3] ?? '');
    if (!match || endpoint === 'tags' || !isDigest(digest)) {
      await deps.primary.forward(ctx);
      return;
    }
    // Every request, whatever is remembered: an answer the primary gave one client is no permission for another.
    const { mirror, repo } = await admitRepository(deps, ctx, match[1] ?? '');
    const kind = endpoint === 'manifests' ? 'manifest' : 'blob';
    // The endpoint too: a layer the primary sent on /blobs/ is MANIFEST_UNKNOWN on /manifests/, never the layer.
    const key = `${kind}\n${mirror.name}\n${repo}\n${digest}`;
    let entry = known.get(key);
    // A stored blob not yet known here: the primary's HEAD decides (no body crosses the socket), the file is sent here.
    if (!entry && kind === 'blob' && ctx.method === 'GET' && (await deps.store.stat(digest))) {
      entry = learn(known, key, kind, digest, await deps.primary.head(ctx), undefined);
    }
    if (entry && (await answer(deps, ctx, digest, entry))) return;
    const keep = kind === 'manifest' && ctx.method === 'GET' ? KEPT_MANIFEST_BYTES : 0;
    const { status, headers, body } = await deps.primary.forward(ctx, keep);
    learn(known, key, kind, digest, { status, headers }, body ?? entry?.bytes);
  };
}

/** The primary served this digest for this repository: it may be served here again, after the same admission. */
function learn(known: LRUCache<string, Known>, key: string, kind: Known['kind'], digest: Digest, answer: Pick<Forwarded, 'status' | 'headers'>, bytes: Buffer | undefined): Known | undefined {
  const { status, headers } = answer;
  const mediaType = headers['content-type'];
  if (status !== 200 || headers['docker-content-digest'] !== digest || typeof mediaType !== 'string') return undefined;
  const size = Number(headers['content-length']);
  const learned: Known = { kind, mediaType, size: Number.isSafeInteger(size) ? size : undefined, bytes: bytes?.length === size ? bytes : undefined };
  if (learned.kind === 'manifest' && learned.size === undefined) return undefined;
  known.set(key, learned);
  return learned;
}

/** Answers from what is known and on disk; false when the primary must answer (a file evicted since, a body not here). */
async function answer(deps: WorkerFrontDeps, ctx: RequestContext, digest: Digest, entry: Known): Promise<boolean> {
  const registry = ctx.registry as string;
  if (entry.kind === 'manifest') {
    const withBody = ctx.method === 'GET';
    if (entry.size === undefined || (withBody && !entry.bytes)) return false;
    ctx.kind = 'manifest';
    ctx.via = 'memory';
    answerManifest(deps, ctx, registry, { digest, mediaType: entry.mediaType, size: entry.size, bytes: entry.bytes, source: 'hit' });
    deps.accessed(digest);
    return true;
  }
  if (ctx.method === 'HEAD') {
    const info = await deps.store.stat(digest);
    if (!info) return false;
    ctx.kind = 'blob';
    ctx.cache = 'hit';
    ctx.via = 'file';
    sendBlobHead(ctx, digest, entry.mediaType, info.size);
    return true;
  }
  // Evicted or deleted since: the primary fetches it again. Once open, a removal cannot cut the read short.
  const opened = await deps.store.open(digest);
  if (!opened) return false;
  ctx.kind = 'blob';
  ctx.cache = 'hit';
  ctx.via = 'file';
  const blob: BlobHandle = {
    size: opened.size,
    mediaType: entry.mediaType,
    manifest: false,
    source: 'hit',
    read: (range) => opened.read(range),
    ...(opened.readAt ? { readAt: opened.readAt } : {}),
    release: () => opened.close(),
  };
  deps.accessed(digest);
  await sendBlob(deps, ctx, digest, blob);
  return true;
}
