// Manifests by digest: immutable, so once cached they are served from memory or the store for ever. A miss is
// one upstream GET per digest however many clients ask (single flight), stored exactly as upstream sent it.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { BlobIndex } from '../index/blob-index.js';
import type { Metrics } from '../metrics/metrics.js';
import { RegistryError } from '../registry/errors.js';
import type { AcceptClass } from '../registry/media-types.js';
import type { Digest, Repository } from '../registry/reference.js';
import { OFFLINE_NOTE } from '../upstream/offline.js';
import type { FetchedManifest, Upstream } from '../upstream/upstream.js';
import { diskFullReason, readWhole, type BlobStore } from './blob-store.js';
import { DETACHED, type ClientAbort } from './client-abort.js';
import type { RepoGuard } from './repo-guard.js';
import type { PullBudget } from './pull-budget.js';
import { SingleFlight } from './single-flight.js';

export type ManifestSource = 'hit' | 'miss' | 'coalesced' | 'stale';

export interface ManifestAnswer {
  digest: Digest;
  mediaType: string;
  size: number;
  /** Present for GET; a HEAD is answered from metadata alone. */
  bytes: Buffer | undefined;
  source: ManifestSource;
}

export interface ManifestStoreDeps {
  store: BlobStore;
  index: BlobIndex;
  upstream: Upstream;
  metrics: Metrics;
  log: Logger;
  memoryBytes: number;
  /** Each client's share of this registry's upstream pulls (`rateLimit.perClient`); absent: unlimited. */
  budget?: PullBudget | undefined;
  /** Bodies in memory, by digest; shared by every registry's store, since a digest is the same bytes anywhere. */
  bodies?: ManifestBodies | undefined;
  now: () => number;
  /** Present when the registry is pulled with credentials: a digest only for a repository that holds it. */
  guard?: RepoGuard | undefined;
  /**
   * Told of each manifest GET from upstream done for a client, as soon as its bytes are checked and before they
   * are stored (cache/prefetch.ts starts the blobs' downloads). Not for the cache's own work (DETACHED).
   */
  onFetched?: ((repo: Repository, manifest: FetchedManifest) => void) | undefined;
  /**
   * Manifests answered but not yet stored, shared by every registry and read by retention: a tag may be
   * recorded before its manifest's file, and a GC meanwhile must still follow the manifest to its layers.
   */
  storing?: Map<Digest, PendingManifest> | undefined;
  /** An eviction or GC removing a digest now finishes before it is written again (see fill.ts). */
  removals?: { settled(digest: Digest): Promise<void> } | undefined;
  /** Held while a manifest is written, so that no removal takes it between its record and its file. */
  inUse?: { hold(digest: Digest): void; release(digest: Digest): void } | undefined;
}

/** A manifest answered from memory while its file and record are written. */
export interface PendingManifest {
  mediaType: string;
  bytes: Buffer;
}

type LocalManifest = PendingManifest;

export type ManifestBodies = LRUCache<string, LocalManifest>;

/** Manifest bodies kept in memory, bounded by their total size. */
export function manifestBodies(memoryBytes: number): ManifestBodies {
  return new LRUCache({ maxSize: Math.max(1, memoryBytes), sizeCalculation: (entry) => Math.max(1, entry.bytes.length) });
}

export class ManifestStore {
  private readonly bodies: ManifestBodies;
  private readonly fetches = new SingleFlight<string, FetchedManifest | undefined>();
  /** Manifests fetched and answered, whose file and index record are still being written. */
  private readonly storing: Map<Digest, LocalManifest>;
  private closing = false;
  private readonly writes = new Set<Promise<void>>();

  constructor(private readonly deps: ManifestStoreDeps) {
    this.bodies = deps.bodies ?? manifestBodies(deps.memoryBytes);
    this.storing = deps.storing ?? new Map<Digest, LocalManifest>();
  }

  async byDigest(repo: Repository, digest: Digest, accept: AcceptClass, withBody: boolean, client: ClientAbort = DETACHED): Promise<ManifestAnswer> {
    const { guard } = this.deps;
    const local = await this.local(digest, withBody);
    if (local) {
      if (guard && !(await guard.holds(repo, digest, 'manifest', client))) throw this.unknown(repo, digest);
      return local;
    }
    if (!withBody) {
      const head = await this.deps.upstream.resolveManifest(repo, digest, { accept: accept.header, signal: client.signal });
      if (!head) throw this.unknown(repo, digest);
      await guard?.record(repo, digest);
      return { digest, mediaType: head.mediaType, size: head.size, bytes: undefined, source: 'miss' };
    }
    return this.fetch(repo, digest, accept, client);
  }

  /**
   * GET from upstream and store, one request per reference and Accept class at a time. A tag is fetched only when
   * upstream's HEAD did not name a digest; by digest, the bytes are exactly what was announced.
   */
  async fetch(repo: Repository, reference: string, accept: AcceptClass, client: ClientAbort): Promise<ManifestAnswer> {
    // A digest is the same bytes whoever asks (unless a guard keeps repositories apart: then a GET for one
    // repository answers that one only); a tag is one repository's, and answered per Accept class.
    const byDigest = this.deps.guard ? `${repo}@${reference}` : reference;
    const key = reference.includes(':') ? byDigest : `${repo}:${reference}#${accept.key}`;
    const { value, shared } = await this.fetches.do(
      key,
      async (signal) => {
        // The client that causes the upstream GET (a pull, on Docker Hub) spends its share; those joining it do not.
        if (this.deps.budget && client.address !== undefined) this.deps.budget.take(client.address);
        return this.fetchAndStore(repo, reference, accept, signal, client !== DETACHED);
      },
      client.signal,
    );
    if (!value) throw this.unknown(repo, reference);
    const { digest, mediaType, bytes } = value;
    return { digest, mediaType, size: bytes.length, bytes, source: shared ? 'coalesced' : 'miss' };
  }

  /** Resolves once the manifests being written now are stored (or given up). */
  async stored(): Promise<void> {
    // Shutdown: no new write starts (a background revalidation may still fetch), and those started finish.
    this.closing = true;
    while (this.writes.size > 0) await Promise.all(this.writes);
  }

  /** A cached manifest by digest, or undefined. Used by /blobs/ too. */
  async local(digest: Digest, withBody: boolean): Promise<ManifestAnswer | undefined> {
    const writing = this.storing.get(digest);
    if (writing) return { digest, mediaType: writing.mediaType, size: writing.bytes.length, bytes: writing.bytes, source: 'hit' };
    const hot = this.bodies.get(digest);
    if (hot) {
      this.deps.index.touch(digest, this.deps.now());
      return { digest, mediaType: hot.mediaType, size: hot.bytes.length, bytes: hot.bytes, source: 'hit' };
    }
    const record = await this.deps.index.get(digest);
    if (!record?.manifest) return undefined;
    this.deps.index.touch(digest, this.deps.now());
    if (!withBody) return { digest, mediaType: record.mediaType, size: record.size, bytes: undefined, source: 'hit' };
    const opened = await this.deps.store.open(digest);
    if (!opened) {
      await this.deps.index.delete(digest);
      return undefined;
    }
    const bytes = await readWhole(opened);
    this.bodies.set(digest, { mediaType: record.mediaType, bytes });
    return { digest, mediaType: record.mediaType, size: bytes.length, bytes, source: 'hit' };
  }

  unknown(repo: Repository, reference: string): RegistryError {
    const message = this.deps.upstream.offline ? `manifest unknown: ${OFFLINE_NOTE}` : 'manifest unknown';
    return new RegistryError('MANIFEST_UNKNOWN', message, { detail: { name: repo, reference } });
  }

  private async fetchAndStore(repo: Repository, reference: string, accept: AcceptClass, signal: AbortSignal, forClient: boolean) {
    const fetched = await this.deps.upstream.fetchManifest(repo, reference, { accept: accept.header, signal });
    if (!fetched) return undefined;
    if (forClient) this.deps.onFetched?.(repo, fetched);
    await this.deps.guard?.record(repo, fetched.digest);
    const { digest } = fetched;
    if (!this.closing && !this.bodies.has(digest) && !this.storing.has(digest) && !(await this.deps.index.get(digest))?.manifest) {
      // The client is answered from memory now; the file (fsync, rename, record) follows, detached: waiting for
      // it held every cold manifest back by a disk flush (issue 16). Until it is stored, `local` answers from
      // `storing`. A crash in between loses only the cached copy: a tag record may name an absent manifest.
      this.storing.set(digest, { mediaType: fetched.mediaType, bytes: fetched.bytes });
      const write = this.store(fetched)
        .catch((err: unknown) => {
          // A full disk costs the cache, not the client: the manifest was answered from memory.
          const reason = diskFullReason(err);
          if (reason) this.deps.metrics.storeWriteFailures.inc({ reason });
          this.deps.log.warn({ err, digest, reason }, 'manifest served without caching it');
        })
        .finally(() => {
          this.storing.delete(digest);
          this.writes.delete(write);
        });
      this.writes.add(write);
    }
    return fetched;
  }

  private async store(manifest: FetchedManifest): Promise<void> {
    const { inUse, removals } = this.deps;
    inUse?.hold(manifest.digest);
    try {
      // A removal of this digest under way finishes first: it cannot unlink the file written now.
      await removals?.settled(manifest.digest);
      await this.write(manifest);
    } finally {
      inUse?.release(manifest.digest);
    }
  }

  private async write(manifest: FetchedManifest): Promise<void> {
    const writer = await this.deps.store.createWriter(manifest.digest, manifest.bytes.length);
    try {
      await pipeline(Readable.from([manifest.bytes]), writer);
      const info = await writer.commit();
      const now = this.deps.now();
      await this.deps.index.put(manifest.digest, {
        size: info.size,
        mediaType: manifest.mediaType,
        manifest: true,
        createdAt: now,
        lastAccessAt: now,
      });
      this.bodies.set(manifest.digest, { mediaType: manifest.mediaType, bytes: manifest.bytes });
    } finally {
      await writer.abort();
    }
  }
}
