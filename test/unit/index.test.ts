// The LevelDB index's basics: tag records per accept class, blob records with the store's totals, pins, and pulls
// counted in memory and written only by flush, all surviving a reopen of the database.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobIndex, type BlobRecord } from '../../src/index/blob-index.js';
import { openIndex, type IndexDb } from '../../src/index/db.js';
import { PinIndex } from '../../src/index/pin-index.js';
import { LevelTagIndex, type TagEntry, type TagKey } from '../../src/index/tag-index.js';
import { parseDigest, type Digest } from '../../src/registry/reference.js';

let dir: string;
let db: IndexDb;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'regmirror-index-'));
  db = await openIndex(dir);
});
afterEach(async () => {
  await db.close();
  await rm(dir, { recursive: true, force: true });
});

/** Closes the database and opens it again: only what was written survives, no in-memory state. */
async function reopen(): Promise<IndexDb> {
  await db.close();
  db = await openIndex(dir);
  return db;
}

const digest = (c: string): Digest => parseDigest(`sha256:${c.repeat(64)}`);
const key = (repo: string, tag: string, acceptKey = 'oci'): TagKey => ({ upstream: 'docker.io', repo, tag, acceptKey });
const entry = (k: TagKey, d: Digest, checkedAt = 1000): TagEntry => ({ ...k, digest: d, mediaType: 'application/vnd.oci.image.index.v1+json', size: 100, checkedAt });

describe('LevelTagIndex', () => {
  it('keeps one record per tag and accept class, and reads it back after a reopen', async () => {
    const tags = new LevelTagIndex(db, 100);
    await tags.put(entry(key('library/alpine', '3.19'), digest('a')));
    await tags.put(entry(key('library/alpine', '3.19', 'docker'), digest('b')));
    expect((await tags.get(key('library/alpine', '3.19')))?.digest).toBe(digest('a'));
    expect(await tags.get(key('library/alpine', '3.20'))).toBeUndefined();
    const again = new LevelTagIndex(await reopen(), 100);
    expect((await again.get(key('library/alpine', '3.19', 'docker')))?.digest).toBe(digest('b'));
    expect((await again.entriesFor('docker.io', 'library/alpine', '3.19')).map((e) => e.acceptKey).sort()).toEqual(['docker', 'oci']);
    expect(await again.entriesFor('other.io', 'library/alpine', '3.19')).toEqual([]);
  });

  it('lists the distinct tags of one repository in order, not those of a repository whose name starts the same', async () => {
    const tags = new LevelTagIndex(db, 100);
    for (const [repo, tag, accept] of [
      ['library/app', 'v2', 'oci'],
      ['library/app', 'v10', 'oci'],
      ['library/app', 'v2', 'docker'],
      ['library/app2', 'v1', 'oci'],
      ['library/ap', 'v9', 'oci'],
    ] as const) {
      await tags.put(entry(key(repo, tag, accept), digest('c')));
    }
    expect(await tags.tagsOf('docker.io', 'library/app')).toEqual(['v10', 'v2']);
    expect(await tags.tagsOf('docker.io', 'library/none')).toEqual([]);
  });

  it('deletes a tag under every accept class, and only that tag', async () => {
    const tags = new LevelTagIndex(db, 100);
    await tags.put(entry(key('library/alpine', '3'), digest('a')));
    await tags.put(entry(key('library/alpine', '3', 'docker'), digest('a')));
    await tags.put(entry(key('library/alpine', '3.19'), digest('b')));
    tags.touch(key('library/alpine', '3'), 5000);
    await tags.deleteTag('docker.io', 'library/alpine', '3');
    await tags.flush(); // the pending hit of the deleted tag must not write it back
    expect(await tags.get(key('library/alpine', '3'))).toBeUndefined();
    expect(await tags.entriesFor('docker.io', 'library/alpine', '3')).toEqual([]);
    expect((await tags.get(key('library/alpine', '3.19')))?.digest).toBe(digest('b'));
    const all: TagEntry[] = [];
    for await (const e of tags.entries()) all.push(e);
    expect(all.map((e) => e.tag)).toEqual(['3.19']);
  });

  it('counts pulls in memory and writes them on flush; a put replaces the record but keeps the pulls not yet flushed', async () => {
    const tags = new LevelTagIndex(db, 100);
    const k = key('library/alpine', 'latest');
    await tags.put(entry(k, digest('a')));
    tags.touch(k, 2000);
    tags.touch(k, 3000);
    tags.touch(key('library/ghost', 'latest'), 3000); // no record: nothing to count
    expect((await new LevelTagIndex(db, 100).get(k))?.hits).toBeUndefined(); // not on disk yet
    await tags.flush();
    expect(await new LevelTagIndex(db, 100).get(k)).toMatchObject({ hits: 2, pulledAt: 3000 });
    tags.touch(k, 4000);
    await tags.put({ ...entry(k, digest('b'), 4000), hits: 2, pulledAt: 3000 }); // revalidated: the caller's record…
    const again = new LevelTagIndex(await reopen(), 100);
    // …plus the pull noted in between, which a flush after the put would otherwise have lost.
    expect(await again.get(k)).toMatchObject({ digest: digest('b'), checkedAt: 4000, hits: 3, pulledAt: 4000 });
    expect(await again.get(key('library/ghost', 'latest'))).toBeUndefined();
  });
});

describe('BlobIndex', () => {
  const record = (size: number, at = 1000): BlobRecord => ({ size, mediaType: 'application/octet-stream', manifest: false, createdAt: at, lastAccessAt: at });

  it('keeps the totals of bytes and files through puts, replacements and deletes, and reads them back after a reopen', async () => {
    const blobs = new BlobIndex(db, 100);
    expect(await blobs.loadUsage()).toEqual({ bytes: 0, count: 0, recounted: true });
    await blobs.put(digest('a'), record(100));
    await blobs.put(digest('b'), record(50));
    await blobs.put(digest('a'), record(120)); // the same digest again: replaced, not counted twice
    expect(blobs.usage).toEqual({ bytes: 170, count: 2 });
    await blobs.delete(digest('b'));
    await blobs.delete(digest('c')); // unknown: nothing changes
    expect(blobs.usage).toEqual({ bytes: 120, count: 1 });
    const again = new BlobIndex(await reopen(), 100);
    expect(again.usage).toEqual({ bytes: 0, count: 0 }); // until loaded
    expect(await again.loadUsage()).toEqual({ bytes: 120, count: 1, recounted: false });
    expect(await again.get(digest('a'))).toEqual(record(120));
    expect(await again.get(digest('b'))).toBeUndefined();
  });

  it('opens by reading the stored totals, not the records (issue 16: a million blobs were summed at every start)', async () => {
    const blobs = new BlobIndex(db, 100);
    await blobs.loadUsage();
    await blobs.put(digest('a'), record(100));
    // A record written behind the index's back (as an older regmirror would): the stored totals do not count it,
    // which shows that opening read them instead of the records. fsck finds the difference (see fsck-usage).
    await db.sublevel<string, BlobRecord>('blobs', { valueEncoding: 'json' }).put(digest('b'), record(7));
    const again = new BlobIndex(await reopen(), 100);
    expect(await again.loadUsage()).toEqual({ bytes: 100, count: 1, recounted: false });
    expect(await again.countUsage()).toEqual({ bytes: 107, count: 2 });
  });

  it('sums the records once and stores the totals when opening an index from before they were kept', async () => {
    const raw = db.sublevel<string, BlobRecord>('blobs', { valueEncoding: 'json' });
    await raw.put(digest('a'), record(100));
    await raw.put(digest('b'), record(20));
    expect(await new BlobIndex(db, 100).loadUsage()).toEqual({ bytes: 120, count: 2, recounted: true });
    const again = new BlobIndex(await reopen(), 100);
    expect(await again.storedUsage()).toEqual({ bytes: 120, count: 2 });
    expect(await again.loadUsage()).toEqual({ bytes: 120, count: 2, recounted: false });
  });

  it('keeps the stored totals equal to the records under concurrent puts, replacements and deletes', async () => {
    const blobs = new BlobIndex(db, 4); // a small hot cache: previous records come from the database
    await blobs.loadUsage();
    const hex = (i: number) => digest((i % 16).toString(16)).slice(0, -2) + (i % 256).toString(16).padStart(2, '0');
    const ops: Array<Promise<void>> = [];
    for (let i = 0; i < 200; i++) {
      const d = hex(i % 50) as Digest;
      ops.push(i % 3 === 2 ? blobs.delete(d) : blobs.put(d, record(1 + (i % 7))));
    }
    await Promise.all(ops);
    const counted = await blobs.countUsage();
    expect(blobs.usage).toEqual(counted);
    const again = new BlobIndex(await reopen(), 100);
    expect(await again.storedUsage()).toEqual(counted);
  });

  it('removes many records in one batch with the totals, and reports only those that were there', async () => {
    const blobs = new BlobIndex(db, 100);
    await blobs.loadUsage();
    await blobs.put(digest('a'), record(10));
    await blobs.put(digest('b'), record(20));
    await blobs.put(digest('c'), record(40));
    const removed = await blobs.deleteMany([digest('a'), digest('c'), digest('c'), digest('d')]);
    expect(removed.map(([d]) => d)).toEqual([digest('a'), digest('c')]);
    expect(blobs.usage).toEqual({ bytes: 20, count: 1 });
    const again = new BlobIndex(await reopen(), 100);
    expect(await again.loadUsage()).toEqual({ bytes: 20, count: 1, recounted: false });
    expect(await again.countUsage()).toEqual({ bytes: 20, count: 1 });
  });

  it('does not bring back, on flush, a record deleted after its access was noted', async () => {
    const blobs = new BlobIndex(db, 100);
    await blobs.loadUsage();
    await blobs.put(digest('a'), record(10, 1000));
    blobs.touch(digest('a'), 2000);
    await Promise.all([blobs.flush(), blobs.delete(digest('a'))]);
    await blobs.flush();
    expect(await blobs.get(digest('a'))).toBeUndefined();
    expect(await blobs.countUsage()).toEqual({ bytes: 0, count: 0 });
    expect(blobs.usage).toEqual({ bytes: 0, count: 0 });
  });

  it('notes accesses in memory, counts them at once, and writes only newer ones on flush', async () => {
    const blobs = new BlobIndex(db, 100);
    await blobs.put(digest('a'), record(10, 5000));
    await blobs.put(digest('b'), record(10, 1000));
    blobs.touch(digest('a'), 4000); // older than the record: never written
    blobs.touch(digest('b'), 6000);
    const b = (await blobs.get(digest('b'))) as BlobRecord;
    expect(blobs.lastAccess(digest('b'), b)).toBe(6000);
    expect((await new BlobIndex(db, 100).get(digest('b')))?.lastAccessAt).toBe(1000);
    await blobs.flush();
    const again = new BlobIndex(await reopen(), 100);
    expect((await again.get(digest('a')))?.lastAccessAt).toBe(5000);
    expect((await again.get(digest('b')))?.lastAccessAt).toBe(6000);
    const listed: Array<[Digest, number]> = [];
    for await (const [d, r] of again.entries()) listed.push([d, r.lastAccessAt]);
    expect(listed).toEqual([
      [digest('a'), 5000],
      [digest('b'), 6000],
    ]);
  });

  it('forgets a pending access of a deleted blob, so flush does not bring it back', async () => {
    const blobs = new BlobIndex(db, 100);
    await blobs.put(digest('a'), record(10));
    blobs.touch(digest('a'), 9000);
    await blobs.delete(digest('a'));
    await blobs.flush();
    expect(await new BlobIndex(await reopen(), 100).get(digest('a'))).toBeUndefined();
  });
});

describe('PinIndex', () => {
  it('adds a reference once, lists it after a reopen, and removes it once', async () => {
    const pins = new PinIndex(db);
    const ref = 'docker.io/library/alpine:3.19';
    expect(await pins.add(ref, 1000)).toBe(true);
    expect(await pins.add(ref, 2000)).toBe(false);
    const again = new PinIndex(await reopen());
    expect(await again.list()).toEqual([{ ref, pinnedAt: 1000 }]);
    expect(await again.remove(ref)).toBe(true);
    expect(await again.remove(ref)).toBe(false);
    expect(await again.list()).toEqual([]);
  });
});
