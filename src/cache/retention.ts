// What stays on disk: the quota (evict least recently used content above the high mark, down to the low mark),
// garbage collection (content no cached tag or pin reaches, past a grace period), and pins. Nothing is removed
// while a client streams it or a download fills it, and nothing a pin reaches is removed at all.
//
// A removal deletes the index record first, then the file: a crash in between leaves an unindexed file (which
// the next download of that digest adopts, and `fsck` reports), never a record without its file.
//
// At scale (issue 16, point 4: a million blobs, a hundred thousand tags) nothing here holds the index in memory:
// what is reachable is marked in a ReachableSet (manifests exactly, blobs at 8 bytes a digest), tags stream from the index root by root, and
// eviction keeps only the oldest records it needs (OldestFirst) instead of sorting them all.
import type { Logger } from 'pino';
import type { BlobIndex, BlobRecord } from '../index/blob-index.js';
import type { PinIndex } from '../index/pin-index.js';
import { yieldToServing, type TagIndex } from '../index/tag-index.js';
import type { Metrics } from '../metrics/metrics.js';
import { walkManifests } from '../registry/manifest-graph.js';
import { parseImageReference, type Digest } from '../registry/reference.js';
import { readStored, type BlobStore } from './blob-store.js';
import { ReachableSet } from './digest-set.js';
import type { InUse } from './in-use.js';
import { OldestFirst } from './oldest-first.js';

export interface RetentionConfig {
  /** Quota for stored content in bytes; undefined: no quota. */
  maxBytes: number | undefined;
  /** Fractions of maxBytes: eviction starts above the high mark and stops under the low mark. */
  highWatermark: number;
  lowWatermark: number;
  /** Unreachable content younger than this (created or last served) is kept. */
  gcGrace: number;
  /** Pins from the config, besides those in the index. */
  pins: readonly string[];
}

export interface RetentionDeps {
  store: BlobStore;
  index: BlobIndex;
  tags: TagIndex;
  pins: PinIndex;
  /** Digests being downloaded or streamed: not removable meanwhile. */
  inUse: Pick<InUse, 'has'>;
  metrics: Metrics;
  log: Logger;
  config: RetentionConfig;
  now?: () => number;
  /** Manifests answered whose file and record are still being written (manifest-store.ts): reached all the same. */
  storing?: ReadonlyMap<Digest, { mediaType: string; bytes: Buffer }> | undefined;
}

export interface GcReport {
  dryRun: boolean;
  removed: Array<{ digest: Digest; size: number; manifest: boolean }>;
  bytes: number;
  /** Content kept because a tag or pin reaches it. */
  reachable: number;
}

/** What removing one image's content did (the admin API's "delete image"). */
export interface RemovalReport {
  removed: Array<{ digest: Digest; size: number; manifest: boolean }>;
  bytes: number;
  /** Content of the image that another tag or a pin still reaches: kept. */
  shared: number;
  /** Content being downloaded or streamed to a client right now: kept (GC removes it later, once unreachable). */
  inUse: number;
}

/** How deep manifests nest: an index names manifests, which name blobs. */
const MAX_DEPTH = 3;

/** Scans of the index one eviction makes at most: a later one looks past content that became busy meanwhile. */
const EVICTION_SCANS = 3;
/** Records removed in one index batch, and files unlinked at once, by GC and eviction. */
const REMOVAL_BATCH = 256;
/**
 * Unlinks in flight at once: each holds one of libuv's 4 threads, which serving's file reads and LevelDB reads
 * share; 16 at once queued a cold manifest read behind a wave of unlinks (eviction p99 4× idle, issue 16).
 */
const FILE_DELETES = 2;
/** Images a GC walks at once (manifest reads overlap; the set they mark is one). */
const WALKS = 8;

/** The last collection that removed (not a dry run): what the status page shows. */
export interface LastGc {
  /** ms since epoch, when it ended. */
  at: number;
  removed: number;
  bytes: number;
}

/**
 * A pass (GC, eviction, an image removal, pinned bytes) ended early because the mirror is shutting down: never a
 * partial answer, which could count reachable content as unreachable.
 */
export class RetentionClosedError extends Error {
  readonly code = 'RETENTION_CLOSED';
  constructor() {
    super('retention is closed: the mirror is shutting down');
    this.name = 'RetentionClosedError';
  }
}

export class Retention {
  /** Undefined until the first collection since start. */
  lastGc: LastGc | undefined;
  private readonly removing = new Map<Digest, Promise<void>>();
  private reserved = 0;
  private evicting: Promise<void> | undefined;
  /** GCs and image removals run one at a time: each reads what is reachable, then removes the rest. */
  private sweeping: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;
  /** Every pass under way (sweeps, evictions, pinned bytes): `close` waits for them. */
  private readonly passes = new Set<Promise<unknown>>();
  private closed = false;

  constructor(private readonly deps: RetentionDeps) {
    this.now = deps.now ?? Date.now;
  }

  get highMark(): number | undefined {
    const { maxBytes, highWatermark } = this.deps.config;
    return maxBytes === undefined ? undefined : Math.floor(maxBytes * highWatermark);
  }

  get lowMark(): number | undefined {
    const { maxBytes, lowWatermark } = this.deps.config;
    return maxBytes === undefined ? undefined : Math.floor(maxBytes * lowWatermark);
  }

  /** Whether `size` more bytes fit under the high mark beside what is stored and reserved, without evicting. */
  hasRoomFor(size: number): boolean {
    const high = this.highMark;
    return high === undefined || this.deps.index.usage.bytes + this.reserved + size <= high;
  }

  /** A download about to start waits for a removal of the same digest, so that it cannot be undone by it. */
  async settled(digest: Digest): Promise<void> {
    await this.removing.get(digest);
  }

  /**
   * Before a download of `size` bytes: evicts so that what is stored, what other downloads will add, and
   * this one stay under the high mark. Returns the function that gives the reservation back.
   */
  async reserve(size: number | undefined): Promise<() => void> {
    const bytes = size ?? 0;
    this.reserved += bytes;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.reserved -= bytes;
    };
    const high = this.highMark;
    // Twice at most: a run that started before this reservation did not count it.
    for (let run = 0; run < 2 && high !== undefined && this.deps.index.usage.bytes + this.reserved > high; run++) {
      await this.evictToLowMark().catch((err: unknown) => this.deps.log.warn({ err }, 'eviction failed'));
    }
    return release;
  }

  /** At start: a quota lowered since the last run, or a store restored from elsewhere, is brought under it. */
  async enforceQuota(): Promise<void> {
    const high = this.highMark;
    if (high !== undefined && this.deps.index.usage.bytes > high) await this.evictToLowMark();
  }

  /** Evicts least recently used content until under the low mark (one run at a time; callers share it). */
  evictToLowMark(): Promise<void> {
    this.evicting ??= this.evict().finally(() => (this.evicting = undefined));
    return this.evicting;
  }

  /** Frees space after a write failed for lack of it, whatever the quota says: down to the low mark, or a tenth. */
  async freeSpace(): Promise<void> {
    const low = this.lowMark;
    const usage = this.deps.index.usage.bytes;
    await this.evict(low !== undefined && usage > low ? usage - low : Math.ceil(usage / 10));
  }

  private evict(target?: number): Promise<void> {
    return this.track(() => this.evictPass(target));
  }

  private async evictPass(target?: number): Promise<void> {
    const low = this.lowMark;
    const excess = target ?? (low === undefined ? 0 : this.deps.index.usage.bytes + this.reserved - low);
    if (excess <= 0) return;
    const pinned = await this.reach(await this.pinRoots());
    let freed = 0;
    /** Chosen but busy (streamed, downloading): the next scan looks past them. */
    const skipped = new Set<Digest>();
    for (let scan = 0; scan < EVICTION_SCANS && freed < excess; scan++) {
      const oldest = new OldestFirst(excess - freed);
      for await (const [digest, record] of this.deps.index.entries()) {
        this.assertOpen();
        if (pinned.has(digest) || skipped.has(digest)) continue;
        oldest.offer({ digest, size: record.size, at: this.deps.index.lastAccess(digest, record) });
      }
      const candidates = oldest.take();
      if (candidates.length === 0) break;
      for (let i = 0; i < candidates.length && freed < excess; i += REMOVAL_BATCH) {
        // Requests that arrived meanwhile are served before the next batch.
        if (i > 0) await yieldToServing();
        this.assertOpen();
        const chunk = candidates.slice(i, i + REMOVAL_BATCH);
        const removed = await this.removeMany(chunk.map((c) => c.digest));
        for (const candidate of chunk) {
          if (!removed.has(candidate.digest)) {
            skipped.add(candidate.digest);
            continue;
          }
          freed += candidate.size;
          this.deps.metrics.evictions.inc();
          this.deps.metrics.evictedBytes.inc(candidate.size);
        }
      }
    }
    const level = freed < excess ? 'warn' : 'info';
    this.deps.log[level]({ freed, wanted: excess, stored: this.deps.index.usage.bytes }, freed < excess ? 'eviction could not free enough (pinned or in use)' : 'evicted least recently used content');
  }

  /**
   * Removes content that no cached tag and no pin reaches and that nobody created or pulled within the grace
   * period. A dry run reports the same list without removing anything.
   */
  gc(options: { dryRun: boolean }): Promise<GcReport> {
    return this.oneAtATime(() => this.collect(options));
  }

  /**
   * Removes what `roots` reach (an image whose tag was just deleted) that no cached tag and no pin reaches,
   * whatever the grace period says: an operator asked for it. Content in use is kept (a client pulling the
   * image finishes; the next pull fetches it again), as is anything another image shares.
   */
  removeUnreferenced(roots: readonly Digest[], options: { activeSince?: number | undefined } = {}): Promise<RemovalReport> {
    return this.oneAtATime(async () => {
      const candidates = await this.contentOf(roots);
      const reachable = await this.reach(this.rootsOfTagsAndPins(), undefined, WALKS);
      const report: RemovalReport = { removed: [], bytes: 0, shared: 0, inUse: 0 };
      // A root read since `activeSince`: the image may be mid-pull, so all of it is in use.
      const { activeSince } = options;
      const active = activeSince !== undefined && (await this.anyAccessedSince(roots, activeSince));
      for (const digest of candidates) {
        const record = await this.deps.index.get(digest);
        if (!record) continue;
        if (reachable.has(digest)) report.shared++;
        else if (active || !(await this.remove(digest))) report.inUse++;
        else {
          report.removed.push({ digest, size: record.size, manifest: record.manifest });
          report.bytes += record.size;
        }
      }
      return report;
    });
  }

  /** A manifest being written: a tag may already name it, so it is followed as if stored. */
  private pending(digest: Digest): BlobRecord | undefined {
    const manifest = this.deps.storing?.get(digest);
    if (!manifest) return undefined;
    const now = this.now();
    return { size: manifest.bytes.length, mediaType: manifest.mediaType, manifest: true, createdAt: now, lastAccessAt: now };
  }

  private async anyAccessedSince(digests: readonly Digest[], since: number): Promise<boolean> {
    for (const digest of digests) {
      const record = await this.deps.index.peek(digest);
      if (record && (this.deps.index.lastAccess(digest, record) >= since || record.createdAt >= since)) return true;
    }
    return false;
  }

  private oneAtATime<T>(run: () => Promise<T>): Promise<T> {
    const result = this.track(() => this.sweeping.then(run, run));
    this.sweeping = result.catch(() => undefined);
    return result;
  }

  /**
   * Ends the passes under way at their next step and waits for them; none starts after. The index must not
   * close under a pass: its iterator then fails with LEVEL_ITERATOR_NOT_OPEN (a GC of a million blobs takes
   * ~45 s, and shutdown gives requests shutdownTimeout, 10 s, before the index closes).
   */
  async close(): Promise<void> {
    this.closed = true;
    while (this.passes.size > 0) await Promise.allSettled([...this.passes]);
  }

  private track<T>(pass: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new RetentionClosedError());
    const running = pass();
    this.passes.add(running);
    const forget = (): void => void this.passes.delete(running);
    running.then(forget, forget);
    return running;
  }

  private assertOpen(): void {
    if (this.closed) throw new RetentionClosedError();
  }

  private async collect(options: { dryRun: boolean }): Promise<GcReport> {
    const reachable = await this.reach(this.rootsOfTagsAndPins(), undefined, WALKS);
    const cutoff = this.now() - this.deps.config.gcGrace;
    const removable: GcReport['removed'] = [];
    for await (const [digest, record] of this.deps.index.entries()) {
      this.assertOpen();
      if (reachable.has(digest) || this.recent(digest, record, cutoff) || this.busy(digest)) continue;
      removable.push({ digest, size: record.size, manifest: record.manifest });
    }
    const removed = options.dryRun ? removable : [];
    if (!options.dryRun) {
      for (let i = 0; i < removable.length; i += REMOVAL_BATCH) {
        if (i > 0) await yieldToServing();
        this.assertOpen();
        const chunk = removable.slice(i, i + REMOVAL_BATCH);
        const done = await this.removeMany(chunk.map((item) => item.digest));
        for (const item of chunk) if (done.has(item.digest)) removed.push(item);
      }
    }
    const bytes = removed.reduce((sum, r) => sum + r.size, 0);
    this.deps.metrics.gcRuns.inc({ mode: options.dryRun ? 'dry-run' : 'remove' });
    if (!options.dryRun) {
      this.deps.metrics.gcFreedBytes.inc(bytes);
      this.lastGc = { at: this.now(), removed: removed.length, bytes };
    }
    return { dryRun: options.dryRun, removed, bytes, reachable: reachable.size };
  }

  /**
   * Bytes of what the pins keep: pinned digests and everything their stored manifests name, each digest once.
   * Walks manifests: callers cache it (the status page asks at most every ~30 s).
   */
  pinnedBytes(): Promise<number> {
    return this.track(async () => {
      let bytes = 0;
      await this.reach(await this.pinRoots(), (record) => (bytes += record.size));
      return bytes;
    });
  }

  private recent(digest: Digest, record: BlobRecord, cutoff: number): boolean {
    return record.createdAt > cutoff || this.deps.index.lastAccess(digest, record) > cutoff;
  }

  private busy(digest: Digest): boolean {
    return this.deps.inUse.has(digest) || this.removing.has(digest);
  }

  /** Index record first, then the file; false when the digest became busy meanwhile (then nothing is removed). */
  private async remove(digest: Digest): Promise<boolean> {
    if (this.busy(digest)) return false;
    const removal = (async () => {
      await this.deps.index.delete(digest);
      await this.deps.store.delete(digest);
    })();
    this.removing.set(digest, removal);
    try {
      await removal;
      return true;
    } finally {
      this.removing.delete(digest);
    }
  }

  /** `remove` for many: the records in one index batch, then the files a few at a time. The digests removed. */
  private async removeMany(digests: readonly Digest[]): Promise<Set<Digest>> {
    const chosen = [...new Set(digests)].filter((d) => !this.busy(d));
    // What had a record: a digest already gone (a self-healed read, an admin delete) frees nothing and is not counted.
    let recorded: Digest[] = [];
    const removal = (async () => {
      recorded = (await this.deps.index.deleteMany(chosen)).map(([digest]) => digest);
      for (let i = 0; i < chosen.length; i += FILE_DELETES) await Promise.all(chosen.slice(i, i + FILE_DELETES).map((d) => this.deps.store.delete(d)));
    })();
    for (const digest of chosen) this.removing.set(digest, removal);
    try {
      await removal;
      return new Set(recorded);
    } finally {
      for (const digest of chosen) this.removing.delete(digest);
    }
  }

  /** Every tag's digest as the index streams them, then the pins': never all tags in memory at once. */
  private async *rootsOfTagsAndPins(): AsyncIterable<Digest> {
    for await (const entry of this.deps.tags.entries()) yield entry.digest;
    yield* await this.pinRoots();
  }

  /** Pinned digests, and the digests pinned tags point to (for any Accept they were pulled with). */
  private async pinRoots(): Promise<Digest[]> {
    const refs = [...this.deps.config.pins, ...(await this.deps.pins.list()).map((p) => p.ref)];
    if (refs.length === 0) return [];
    const roots: Digest[] = [];
    const tagged = new Set<string>();
    for (const text of refs) {
      let ref;
      try {
        ref = parseImageReference(text);
      } catch {
        continue; // validated when pinned; a bad config entry fails at load
      }
      // A digest is the same content whichever registry names it; a tag is one registry's.
      if (ref.digest) roots.push(ref.digest);
      else tagged.add(`${ref.registry}/${ref.repo}:${ref.tag ?? 'latest'}`);
    }
    if (tagged.size > 0) {
      for await (const entry of this.deps.tags.entries()) {
        if (tagged.has(`${entry.upstream}/${entry.repo}:${entry.tag}`)) roots.push(entry.digest);
      }
    }
    return roots;
  }

  /**
   * The roots and everything their stored manifests name, to MAX_DEPTH; missing content is reached all the same.
   * Root by root into one DigestSet: content many images share is read once, and memory is 8 bytes a digest.
   * `onPresent` sees the record of each present digest reached, once.
   */
  private async reach(roots: AsyncIterable<Digest> | Iterable<Digest>, onPresent?: (record: BlobRecord) => void, walks = 1): Promise<ReachableSet> {
    const reached = new ReachableSet();
    const running = new Set<Promise<void>>();
    let failure: { err: unknown } | undefined;
    for await (const root of roots) {
      if (this.closed) failure ??= { err: new RetentionClosedError() };
      if (failure) break;
      if (reached.has(root, 'root')) continue;
      const walking: Promise<void> = this.walk([root], reached, onPresent)
        .then((nodes) => {
          // Missing content is not marked by the walk (only what it found present): it is reachable all the same.
          for (const node of nodes) reached.add(node.digest, node.role);
        })
        .catch((err: unknown) => void (failure ??= { err }))
        .finally(() => running.delete(walking));
      running.add(walking);
      if (running.size >= walks) await Promise.race(running);
    }
    await Promise.all(running);
    if (failure) throw failure.err;
    return reached;
  }

  /** What a few roots reach (one image's content), listed: for removing an image. */
  private async contentOf(roots: readonly Digest[]): Promise<Set<Digest>> {
    return new Set((await this.walk(roots, new Set<Digest>())).map((n) => n.digest));
  }

  private walk(roots: readonly Digest[], seen: { has(d: Digest): boolean; add(d: Digest): unknown }, onPresent?: (record: BlobRecord) => void) {
    const { index, store } = this.deps;
    return walkManifests(
      roots.map((digest) => ({ digest })),
      {
        maxDepth: MAX_DEPTH,
        missing: 'skip',
        platformsOptional: true,
        badManifest: 'skip',
        artifactBlobs: true,
        dedupe: true,
        seen,
        stat: async (node) => {
          const record = (await index.peek(node.digest)) ?? this.pending(node.digest);
          if (record) onPresent?.(record);
          return record;
        },
        read: async (node) => (await readStored(store, node.digest)) ?? this.deps.storing?.get(node.digest)?.bytes,
      },
    );
  }
}
