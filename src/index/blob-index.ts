// Records of verified content files (blobs and manifests alike), with an in-memory LRU in front of LevelDB
// so that a warm hit costs no disk read for metadata. Also keeps the store's totals (bytes, count) for the
// quota, and last-access times for LRU eviction: a hit is noted in memory and written in batches.
import { LRUCache } from 'lru-cache';
import type { Digest } from '../registry/reference.js';
import { sublevel, type IndexDb } from './db.js';

export interface BlobRecord {
  size: number;
  /** Content-Type to answer with: upstream's for layers, the manifest type for manifests. */
  mediaType: string;
  /** True when the content is a manifest (served with its media type on /blobs/ too). */
  manifest: boolean;
  createdAt: number;
  /** Last time a client was served this content; up to one flush interval behind in the database. */
  lastAccessAt: number;
}

export interface StoreUsage {
  bytes: number;
  count: number;
}

export class BlobIndex {
  private readonly db;
  private readonly hot: LRUCache<string, BlobRecord>;
  /** Accesses not yet written: digest → ms. */
  private readonly accessed = new Map<Digest, number>();
  private readonly totals: StoreUsage = { bytes: 0, count: 0 };

  constructor(db: IndexDb, hotEntries: number) {
    this.db = sublevel<BlobRecord>(db, 'blobs');
    this.hot = new LRUCache({ max: hotEntries });
  }

  /** Sums every record once at start; put and delete keep the totals from then on. */
  async loadUsage(): Promise<StoreUsage> {
    let bytes = 0;
    let count = 0;
    for await (const record of this.db.values()) {
      bytes += record.size;
      count++;
    }
    this.totals.bytes = bytes;
    this.totals.count = count;
    return this.usage;
  }

  get usage(): StoreUsage {
    return { ...this.totals };
  }

  async get(digest: Digest): Promise<BlobRecord | undefined> {
    const hot = this.hot.get(digest);
    if (hot) return hot;
    const record = await this.db.get(digest);
    if (record) this.hot.set(digest, record);
    return record;
  }

  /**
   * The record without promoting it in, or adding it to, the hot records: for listings and reports (status page,
   * pinned bytes), which would otherwise push out what clients are pulling.
   */
  async peek(digest: Digest): Promise<BlobRecord | undefined> {
    return this.hot.peek(digest) ?? (await this.db.get(digest));
  }

  async put(digest: Digest, record: BlobRecord): Promise<void> {
    const previous = await this.get(digest);
    await this.db.put(digest, record);
    this.hot.set(digest, record);
    this.totals.bytes += record.size - (previous?.size ?? 0);
    if (!previous) this.totals.count++;
  }

  async delete(digest: Digest): Promise<void> {
    const previous = await this.get(digest);
    this.hot.delete(digest);
    this.accessed.delete(digest);
    await this.db.del(digest);
    if (previous) {
      this.totals.bytes -= previous.size;
      this.totals.count--;
    }
  }

  /** Notes a client access in memory; `flush` writes them. No disk write per hit. */
  touch(digest: Digest, now: number): void {
    this.accessed.set(digest, now);
  }

  /** The latest access, counting those not yet flushed. */
  lastAccess(digest: Digest, record: BlobRecord): number {
    return Math.max(record.lastAccessAt, this.accessed.get(digest) ?? 0);
  }

  async flush(): Promise<void> {
    const pending = [...this.accessed];
    this.accessed.clear();
    const writes: Array<{ type: 'put'; key: string; value: BlobRecord }> = [];
    for (const [digest, at] of pending) {
      const record = await this.get(digest);
      if (!record || record.lastAccessAt >= at) continue;
      const updated = { ...record, lastAccessAt: at };
      this.hot.set(digest, updated);
      writes.push({ type: 'put', key: digest, value: updated });
    }
    if (writes.length > 0) await this.db.batch(writes);
  }

  async *entries(): AsyncIterable<[Digest, BlobRecord]> {
    for await (const [digest, record] of this.db.iterator()) yield [digest as Digest, record];
  }
}
