// Records of verified content files (blobs and manifests alike), with an in-memory LRU in front of LevelDB
// so that a warm hit costs no disk read for metadata. Also keeps the store's totals (bytes, count) for the
// quota, and last-access times for LRU eviction: a hit is noted in memory and written in batches.
//
// The totals are a record of their own (sublevel `meta`, key `usage`), written in the same LevelDB batch as
// every record put or deleted, so that opening the index reads one record, not one per blob (issue 16: a
// million blobs took seconds to sum), and a crash cannot leave them out of step. Writes that change a record
// run one at a time: each reads the previous record and the totals, then writes both. An index from before
// the totals were kept is summed once at open and the record written; `fsck` checks them against the records.
import { LRUCache } from 'lru-cache';
import type { Digest } from '../registry/reference.js';
import { BlobTableBuilder, type BlobMeta, type BlobTable } from './blob-table.js';
import { sublevel, type IndexDb } from './db.js';
import { FLUSH_CHUNK, yieldToServing } from './tag-index.js';

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

/** The key of the totals record in the `meta` sublevel. */
export const USAGE_KEY = 'usage';

/** Records read per step of the table's build; serving runs between steps. */
const TABLE_CHUNK = 1024;
/** Records added to a built table before it is built again (a Map entry costs ~5× a base entry). */
const TABLE_ADDED_MIN = 65_536;

export type TableState = 'off' | 'building' | 'ready' | 'too-large';

export class BlobIndex {
  private readonly root: IndexDb;
  private readonly db;
  private readonly meta;
  private readonly hot: LRUCache<string, BlobRecord>;
  /** Accesses not yet written: digest → ms. */
  private readonly accessed = new Map<Digest, number>();
  private totals: StoreUsage = { bytes: 0, count: 0 };
  /** The tail of the record writes, which run one at a time (see the header). */
  private writes: Promise<unknown> = Promise.resolve();
  /** Presence, size and type of every sha256 record, once built (blob-table.ts). */
  private table: BlobTable | undefined;
  /** While a build scans: every record change since it began (null: removed), applied when it ends. */
  private pending: Map<Digest, BlobMeta | null> | undefined;
  private building: Promise<void> | undefined;
  private tableMax = 0;
  private tableStopped = false;
  private tableTooLarge = false;

  constructor(db: IndexDb, hotEntries: number) {
    this.root = db;
    this.db = sublevel<BlobRecord>(db, 'blobs');
    this.meta = sublevel<StoreUsage>(db, 'meta');
    this.hot = new LRUCache({ max: hotEntries });
  }

  /**
   * The stored totals, read at open: one record. An index written before they were kept has none: the
   * records are summed once (proportional to the cache, once in its life) and the totals written.
   */
  async loadUsage(): Promise<StoreUsage & { recounted: boolean }> {
    const stored = await this.storedUsage();
    if (stored) {
      this.totals = stored;
      return { ...this.usage, recounted: false };
    }
    await this.setUsage(await this.countUsage());
    return { ...this.usage, recounted: true };
  }

  /** The totals as stored, without counting: undefined for an index from before they were kept. */
  async storedUsage(): Promise<StoreUsage | undefined> {
    const stored = await this.meta.get(USAGE_KEY);
    return isUsage(stored) ? { bytes: stored.bytes, count: stored.count } : undefined;
  }

  /** Sums every record (fsck, and an index without totals): reads the whole index. */
  async countUsage(): Promise<StoreUsage> {
    let bytes = 0;
    let count = 0;
    for await (const record of this.db.values()) {
      bytes += record.size;
      count++;
    }
    return { bytes, count };
  }

  /** Replaces the stored totals (after counting them: fsck --repair, or an index from before they were kept). */
  setUsage(usage: StoreUsage): Promise<void> {
    return this.oneAtATime(async () => {
      await this.meta.put(USAGE_KEY, usage);
      this.totals = { ...usage };
    });
  }

  get usage(): StoreUsage {
    return { ...this.totals };
  }

  /**
   * What a HEAD needs, without a disk read once the table is built (for sha256 digests); else from the hot
   * records or the index, as `get`.
   */
  async headOf(digest: Digest): Promise<BlobMeta | undefined> {
    const { table } = this;
    if (table?.covers(digest)) return table.get(digest);
    const record = await this.get(digest);
    return record && { size: record.size, mediaType: record.mediaType, manifest: record.manifest };
  }

  get tableState(): TableState {
    if (this.table) return 'ready';
    if (this.building) return 'building';
    return this.tableTooLarge ? 'too-large' : 'off';
  }

  /** Bytes the table holds (0 when none): counted in the memory at rest. */
  get tableBytes(): number {
    return this.table?.bytes ?? 0;
  }

  /**
   * Builds the table in the background: one scan of the records, a chunk at a time. Not when the index holds
   * more than `maxEntries` records (then, or if the table outgrows that, HEADs read the index as before).
   * Resolves when built (or given up); `stopTable` ends it early.
   */
  buildTable(maxEntries: number): Promise<void> {
    this.tableMax = maxEntries;
    this.building ??= this.scanTable().finally(() => (this.building = undefined));
    return this.building;
  }

  /** Stops a build under way (before the database closes) and keeps the table from being built again. */
  async stopTable(): Promise<void> {
    this.tableStopped = true;
    await this.building;
  }

  private async scanTable(): Promise<void> {
    if (this.tableStopped) return;
    if (this.totals.count > this.tableMax) {
      this.table = undefined;
      this.tableTooLarge = true;
      return;
    }
    const pending = new Map<Digest, BlobMeta | null>();
    this.pending = pending;
    const builder = new BlobTableBuilder(this.totals.count);
    // The iterator reads a snapshot taken now: changes from here on are in `pending`, applied after it.
    const iterator = this.db.iterator();
    let ordered = true;
    try {
      for (;;) {
        const entries = await iterator.nextv(TABLE_CHUNK);
        if (entries.length === 0 || this.tableStopped) break;
        for (const [digest, record] of entries) ordered &&= builder.add(digest as Digest, record);
        if (!ordered) break;
        await yieldToServing();
      }
    } finally {
      await iterator.close();
      this.pending = undefined;
    }
    if (!ordered || this.tableStopped) return;
    const table = builder.finish();
    for (const [digest, meta] of pending) {
      if (meta) table.set(digest, meta);
      else table.delete(digest);
    }
    this.table = table;
    this.tableTooLarge = false;
  }

  /** Every committed record change reaches the table and a build under way. */
  private changed(digest: Digest, meta: BlobMeta | null): void {
    this.pending?.set(digest, meta);
    const { table } = this;
    if (!table) return;
    if (meta) table.set(digest, meta);
    else table.delete(digest);
    // The records there are, not the table's slots: a removed record's slot stays until the next build, and
    // counting slots dropped the table for good under eviction churn at a steady count (issue 16 review).
    if (this.totals.count > this.tableMax) {
      // Outgrew its bound: dropped, and HEADs read the index.
      this.table = undefined;
      this.tableTooLarge = true;
    } else if (table.addedCount > Math.max(TABLE_ADDED_MIN, (table.entries - table.addedCount) / 8) && !this.tableStopped) {
      // The added records go into a new base; this table answers until it is ready.
      void this.buildTable(this.tableMax);
    }
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

  /** Writes the record and the totals in one batch. */
  put(digest: Digest, record: BlobRecord): Promise<void> {
    return this.oneAtATime(async () => {
      const previous = await this.get(digest);
      const usage = { bytes: this.totals.bytes + record.size - (previous?.size ?? 0), count: this.totals.count + (previous ? 0 : 1) };
      await this.root.batch([
        { type: 'put', sublevel: this.db, key: digest, value: record },
        { type: 'put', sublevel: this.meta, key: USAGE_KEY, value: usage },
      ]);
      this.hot.set(digest, record);
      this.totals = usage;
      this.changed(digest, { size: record.size, mediaType: record.mediaType, manifest: record.manifest });
    });
  }

  /** Removes the record and updates the totals in one batch; nothing to do for a digest without a record. */
  delete(digest: Digest): Promise<void> {
    return this.oneAtATime(async () => {
      const previous = await this.get(digest);
      this.hot.delete(digest);
      this.accessed.delete(digest);
      if (!previous) {
        this.changed(digest, null);
        return;
      }
      const usage = { bytes: this.totals.bytes - previous.size, count: this.totals.count - 1 };
      await this.root.batch([
        { type: 'del', sublevel: this.db, key: digest },
        { type: 'put', sublevel: this.meta, key: USAGE_KEY, value: usage },
      ]);
      this.totals = usage;
      this.changed(digest, null);
    });
  }

  /**
   * Removes many records in one batch with the totals (GC and eviction remove thousands: one write each was most
   * of a pass). Returns the records that were there.
   */
  deleteMany(digests: readonly Digest[]): Promise<Array<[Digest, BlobRecord]>> {
    return this.oneAtATime(async () => {
      const found: Array<[Digest, BlobRecord]> = [];
      for (const digest of new Set(digests)) {
        const previous = this.hot.peek(digest) ?? (await this.db.get(digest));
        this.hot.delete(digest);
        this.accessed.delete(digest);
        if (previous) found.push([digest, previous]);
      }
      if (found.length === 0) return found;
      const usage = found.reduce((u, [, r]) => ({ bytes: u.bytes - r.size, count: u.count - 1 }), this.totals);
      await this.root.batch([
        ...found.map(([key]) => ({ type: 'del' as const, sublevel: this.db, key })),
        { type: 'put', sublevel: this.meta, key: USAGE_KEY, value: usage },
      ]);
      this.totals = usage;
      for (const [digest] of found) this.changed(digest, null);
      return found;
    });
  }

  /** Notes a client access in memory; `flush` writes them. No disk write per hit. */
  touch(digest: Digest, now: number): void {
    this.accessed.set(digest, now);
  }

  /** The latest access, counting those not yet flushed. */
  lastAccess(digest: Digest, record: BlobRecord): number {
    return Math.max(record.lastAccessAt, this.accessed.get(digest) ?? 0);
  }

  /** Writes the noted accesses; in turn with put and delete, so that a record deleted meanwhile stays deleted. */
  flush(): Promise<void> {
    const pending = [...this.accessed];
    this.accessed.clear();
    if (pending.length === 0) return this.writes.then(() => undefined);
    return this.oneAtATime(async () => {
      // In chunks with the event loop let go between them, as the tag index's flush (see there).
      for (let from = 0; from < pending.length; from += FLUSH_CHUNK) {
        if (from > 0) await yieldToServing();
        const writes: Array<{ type: 'put'; key: string; value: BlobRecord }> = [];
        for (const [digest, at] of pending.slice(from, from + FLUSH_CHUNK)) {
          const record = await this.get(digest);
          if (!record || record.lastAccessAt >= at) continue;
          const updated = { ...record, lastAccessAt: at };
          this.hot.set(digest, updated);
          writes.push({ type: 'put', key: digest, value: updated });
        }
        if (writes.length > 0) await this.db.batch(writes);
      }
    });
  }

  private oneAtATime<T>(write: () => Promise<T>): Promise<T> {
    const result = this.writes.then(write, write);
    this.writes = result.catch(() => undefined);
    return result;
  }

  async *entries(): AsyncIterable<[Digest, BlobRecord]> {
    for await (const [digest, record] of this.db.iterator()) yield [digest as Digest, record];
  }
}

function isUsage(value: unknown): value is StoreUsage {
  const u = value as Partial<StoreUsage> | undefined;
  return Number.isSafeInteger(u?.bytes) && Number.isSafeInteger(u?.count) && (u?.bytes ?? -1) >= 0 && (u?.count ?? -1) >= 0;
}
