// Blob lookups for the HTTP layer: a verified file when we have one, else the shared upstream download.
import type { Readable } from 'node:stream';
import type { BlobIndex } from '../index/blob-index.js';
import type { ByteRange } from '../registry/byte-range.js';
import type { Digest, Repository } from '../registry/reference.js';
import type { Upstream } from '../upstream/upstream.js';
import type { BlobFills } from './blob-fill.js';
import type { BlobStore } from './blob-store.js';
import type { Retention } from './retention.js';

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

export class BlobCache {
  constructor(
    private readonly store: BlobStore,
    private readonly index: BlobIndex,
    private readonly fills: BlobFills,
    private readonly upstream: Upstream,
    /** Keeps a blob from eviction while it is streamed; absent in tests of serving alone. */
    private readonly retention?: Retention,
  ) {}

  /** The verified local copy, if any. A record whose file vanished is dropped and reported as absent. */
  async lookup(digest: Digest): Promise<BlobHandle | undefined> {
    const record = await this.index.get(digest);
    if (!record) return undefined;
    const opened = await this.store.open(digest);
    if (!opened) {
      await this.index.delete(digest);
      return undefined;
    }
    this.index.touch(digest, Date.now());
    this.retention?.acquire(digest);
    let released = false;
    const release = (): void => {
      if (!released) this.retention?.release(digest);
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
    const joined = await this.fills.join(repo, digest);
    if (!joined) return undefined;
    const { fill, coalesced } = joined;
    return {
      size: fill.size,
      mediaType: fill.mediaType,
      manifest: false,
      source: coalesced ? 'coalesced' : 'miss',
      read: (range) => fill.read(range),
      release: () => Promise.resolve(),
    };
  }

  /** What a HEAD needs: from the index, a running download, or upstream's HEAD (which starts no download). */
  async head(repo: Repository, digest: Digest, signal?: AbortSignal): Promise<(BlobMeta & { source: BlobSource }) | undefined> {
    const record = await this.index.get(digest);
    if (record) return { size: record.size, mediaType: record.mediaType, manifest: record.manifest, source: 'hit' };
    const remote = await this.upstream.statBlob(repo, digest, { signal });
    if (!remote) return undefined;
    return { size: remote.size, mediaType: remote.mediaType ?? 'application/octet-stream', manifest: false, source: 'miss' };
  }
}
