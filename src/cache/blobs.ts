// The blob path behind one call: a verified local file when we have one, else the shared upstream download
// (fills.ts), else a manifest of that digest (clients ask /blobs/ for manifests too). Like distribution's proxy
// blob store, it decorates the local store with the remote one; the HTTP layer only sends what it returns.
import { Readable } from 'node:stream';
import type { BlobIndex } from '../index/blob-index.js';
import type { ByteRange } from '../registry/byte-range.js';
import { RegistryError } from '../registry/errors.js';
import { ANY_MANIFEST } from '../registry/media-types.js';
import type { Digest, Repository } from '../registry/reference.js';
import type { Upstream } from '../upstream/upstream.js';
import type { BlobStore } from './blob-store.js';
import { DETACHED, type ClientAbort } from './client-abort.js';
import type { BlobFills } from './fills.js';
import type { InUse } from './in-use.js';
import type { ManifestCache } from './manifests.js';
import type { RepoGuard } from './repo-guard.js';

export type BlobSource = 'hit' | 'miss' | 'coalesced';

/** A blob ready to be sent: its size is known before any header goes out. Read it once, or release it. */
export interface BlobHandle {
  /** Undefined only for a download whose upstream did not announce a length. */
  readonly size: number | undefined;
  readonly mediaType: string;
  /** The content is a manifest (asked for on /blobs/ by digest, as containerd does). */
  readonly manifest: boolean;
  readonly source: BlobSource;
  read(range?: ByteRange): Readable;
  /** Present for a verified local file: positional reads into buffers the caller reuses. */
  readonly readAt?: (buffer: Buffer, length: number, position: number) => Promise<number>;
  release(): Promise<void>;
}

export interface BlobMeta {
  size: number | undefined;
  mediaType: string;
  manifest: boolean;
}

export interface BlobCacheDeps {
  store: BlobStore;
  index: BlobIndex;
  fills: BlobFills;
  /** This registry's upstream, and how long one of its downloads may take. */
  upstream: Upstream;
  fillTimeoutMs: number;
  /** For a manifest digest asked for on /blobs/ that is not cached as a blob. */
  manifests: Pick<ManifestCache, 'byDigest'>;
  /** Keeps a blob from eviction while it is streamed. */
  inUse: InUse;
  /** Present when the registry is pulled with credentials: content by digest only for a repository that holds it. */
  guard?: RepoGuard | undefined;
}

export class BlobCache {
  constructor(private readonly deps: BlobCacheDeps) {}

  /**
   * GET: the local copy, else the shared download, else a manifest of that digest; undefined when upstream has
   * none of them. Cached manifests are in the same store and index, with their media type: containerd asks
   * /blobs/ for a manifest digest and breaks on application/octet-stream.
   */
  async get(repo: Repository, digest: Digest, client: ClientAbort = DETACHED): Promise<BlobHandle | undefined> {
    // Asked before the local copy and before joining a download, either of which may be another repository's.
    const { guard } = this.deps;
    if (guard && !(await guard.holds(repo, digest, 'blob', client))) return undefined;
    // The download is shared and owns its signal; the manifest fallback is this client's alone and follows it.
    return (await this.lookup(digest)) ?? (await this.fetch(repo, digest)) ?? (await this.manifestAsBlob(repo, digest, client));
  }

  /** The verified local copy, if any. A record whose file vanished is dropped and reported as absent. */
  async lookup(digest: Digest): Promise<BlobHandle | undefined> {
    const { index, store, inUse } = this.deps;
    const record = await index.headOf(digest);
    if (!record) return undefined;
    const opened = await store.open(digest);
    if (!opened) {
      await index.delete(digest);
      return undefined;
    }
    index.touch(digest, Date.now());
    inUse.hold(digest);
    let released = false;
    const release = (): void => {
      if (!released) inUse.release(digest);
      released = true;
    };
    return {
      size: opened.size,
      mediaType: record.mediaType,
      manifest: record.manifest,
      source: 'hit',
      read: (range) => opened.read(range).once('close', release),
      ...(opened.readAt ? { readAt: opened.readAt } : {}),
      release: () => {
        release();
        return opened.close();
      },
    };
  }

  /** Joins (or starts) the upstream download; undefined when upstream does not have the blob. */
  async fetch(repo: Repository, digest: Digest): Promise<BlobHandle | undefined> {
    const joined = await this.deps.fills.join(repo, digest, this.deps);
    if (!joined) return undefined;
    const { fill, coalesced } = joined;
    // Upstream answered this repository's GET (seed comes here without the guard's check): it holds the digest.
    if (!coalesced) await this.deps.guard?.record(repo, digest);
    return {
      size: fill.size,
      mediaType: fill.mediaType,
      manifest: false,
      source: coalesced ? 'coalesced' : 'miss',
      read: (range) => fill.read(range),
      release: () => Promise.resolve(),
    };
  }

  /** What a HEAD needs: from the index, or upstream's HEAD (which starts no download). */
  async head(repo: Repository, digest: Digest, client: ClientAbort = DETACHED): Promise<(BlobMeta & { source: BlobSource }) | undefined> {
    const { index, upstream, guard } = this.deps;
    // From the in-memory table once it is built: a HEAD reads no disk (issue 16, point 4).
    const record = await index.headOf(digest);
    if (record) {
      if (guard && !(await guard.holds(repo, digest, record.manifest ? 'manifest' : 'blob', client))) return undefined;
      return { size: record.size, mediaType: record.mediaType, manifest: record.manifest, source: 'hit' };
    }
    const remote = await upstream.statBlob(repo, digest, { signal: client.signal });
    if (!remote) return undefined;
    // Upstream's HEAD for this repository is the confirmation a guard asks for.
    await guard?.record(repo, digest);
    return { size: remote.size, mediaType: remote.mediaType ?? 'application/octet-stream', manifest: false, source: 'miss' };
  }

  /** Registries answer 404 on /blobs/ for a manifest digest (distribution does): ask /manifests/ instead. */
  private async manifestAsBlob(repo: Repository, digest: Digest, client: ClientAbort): Promise<BlobHandle | undefined> {
    let manifest;
    try {
      manifest = await this.deps.manifests.byDigest(repo, digest, ANY_MANIFEST, true, client);
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN') return undefined;
      throw err;
    }
    const bytes = manifest.bytes ?? Buffer.alloc(0);
    return {
      size: bytes.length,
      mediaType: manifest.mediaType,
      manifest: true,
      source: manifest.source === 'coalesced' ? 'coalesced' : manifest.source === 'hit' ? 'hit' : 'miss',
      read: (range) => Readable.from([range ? bytes.subarray(range.start, range.end + 1) : bytes]),
      release: () => Promise.resolve(),
    };
  }
}
