// The blob table (what a HEAD needs, in memory) agrees with the index it mirrors: built from a scan, kept by every
// put and removal, including those made while the scan runs, and exact for digests that share a long prefix.
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobIndex, type BlobRecord } from '../../src/index/blob-index.js';
import { BlobTableBuilder, type BlobMeta } from '../../src/index/blob-table.js';
import { openIndex, type IndexDb } from '../../src/index/db.js';
import type { Digest } from '../../src/registry/reference.js';

/** 64 hex digits: a shared 62-digit prefix and a 2-digit tail, so that many digests differ only at the end. */
const digestOf = (n: number): Digest => `sha256:${'ab'.repeat(31)}${n.toString(16).padStart(2, '0')}` as Digest;
const TYPES = ['application/octet-stream', 'application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.manifest.v1+json'];
const record = (size: number, type = 0, manifest = false): BlobRecord => ({ size, mediaType: TYPES[type] as string, manifest, createdAt: 1, lastAccessAt: 1 });
const metaOf = (r: BlobRecord): BlobMeta => ({ size: r.size, mediaType: r.mediaType, manifest: r.manifest });

describe('BlobTable', () => {
  it('answers like a Map after any sequence of sets and deletes over a sorted base', () => {
    const op = fc.record({ n: fc.integer({ min: 0, max: 255 }), kind: fc.constantFrom('set', 'delete'), size: fc.nat(), type: fc.integer({ min: 0, max: 2 }), manifest: fc.boolean() });
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 255 }), { maxLength: 100 }), fc.array(op, { maxLength: 200 }), (base, ops) => {
        const model = new Map<Digest, BlobMeta>();
        const builder = new BlobTableBuilder(4);
        for (const n of [...base].sort((a, b) => a - b)) {
          const meta = { size: n * 7, mediaType: TYPES[n % 3] as string, manifest: n % 2 === 0 };
          expect(builder.add(digestOf(n), meta)).toBe(true);
          model.set(digestOf(n), meta);
        }
        const table = builder.finish();
        for (const o of ops) {
          const d = digestOf(o.n);
          if (o.kind === 'set') {
            const meta = metaOf(record(o.size, o.type, o.manifest));
            table.set(d, meta);
            model.set(d, meta);
          } else {
            table.delete(d);
            model.delete(d);
          }
        }
        for (let n = 0; n < 256; n++) expect(table.get(digestOf(n))).toEqual(model.get(digestOf(n)));
      }),
    );
  });

  it('refuses keys out of order (then the build is given up) and leaves other algorithms to the index', () => {
    const builder = new BlobTableBuilder(1);
    expect(builder.add(digestOf(5), metaOf(record(1)))).toBe(true);
    expect(builder.add(`sha512:${'0'.repeat(128)}` as Digest, metaOf(record(1)))).toBe(true);
    expect(builder.add(digestOf(4), metaOf(record(1)))).toBe(false);
    const table = builder.finish();
    expect(table.covers(`sha512:${'0'.repeat(128)}` as Digest)).toBe(false);
    expect(table.get(digestOf(5))?.size).toBe(1);
    expect(table.entries).toBe(1);
  });
});

describe('BlobIndex with its table', () => {
  let dir: string;
  let db: IndexDb;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'regmirror-table-'));
    db = await openIndex(dir);
  });
  afterEach(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers HEADs from the table once built, the same as the records, including changes made during the build', async () => {
    const index = new BlobIndex(db, 100);
    await index.loadUsage();
    for (let n = 0; n < 200; n += 2) await index.put(digestOf(n), record(n, n % 3, n % 4 === 0));
    expect(index.tableState).toBe('off');
    const building = index.buildTable(1000);
    expect(index.tableState).toBe('building');
    // While the scan runs: a put, a removal, and a removal of something the snapshot holds.
    await index.put(digestOf(1), record(11, 1));
    await index.delete(digestOf(2));
    await index.deleteMany([digestOf(4), digestOf(6)]);
    await index.put(digestOf(8), record(88, 2, true));
    await building;
    expect(index.tableState).toBe('ready');
    expect(index.tableBytes).toBeGreaterThan(0);
    for (let n = 0; n < 256; n++) {
      const r = await index.get(digestOf(n));
      expect(await index.headOf(digestOf(n)), `digest ${n}`).toEqual(r && metaOf(r));
    }
    // And after it: every change reaches the table.
    await index.put(digestOf(201), record(5));
    await index.delete(digestOf(10));
    expect(await index.headOf(digestOf(201))).toEqual(metaOf(record(5)));
    expect(await index.headOf(digestOf(10))).toBeUndefined();
  });

  it('keeps no table for an index with more records than its bound, and drops one that outgrows it', async () => {
    const index = new BlobIndex(db, 100);
    await index.loadUsage();
    for (let n = 0; n < 10; n++) await index.put(digestOf(n), record(n));
    await index.buildTable(5);
    expect(index.tableState).toBe('too-large');
    expect(await index.headOf(digestOf(3))).toEqual(metaOf(record(3)));

    const other = new BlobIndex(db, 100);
    await other.loadUsage();
    await other.buildTable(11);
    expect(other.tableState).toBe('ready');
    await other.put(digestOf(20), record(20));
    await other.put(digestOf(21), record(21));
    expect(other.tableState).toBe('too-large');
    expect(await other.headOf(digestOf(21))).toEqual(metaOf(record(21)));
  });

  it('keeps its table through removals and puts at a steady record count (removed slots are not records)', async () => {
    const index = new BlobIndex(db, 100);
    await index.loadUsage();
    for (let n = 0; n < 10; n++) await index.put(digestOf(n), record(n));
    await index.buildTable(11);
    // Eviction and new downloads: the count stays at 10 while the base's removed slots and the added ones grow.
    for (let n = 0; n < 5; n++) {
      await index.delete(digestOf(n));
      await index.put(digestOf(100 + n), record(100 + n));
    }
    expect(index.usage.count).toBe(10);
    expect(index.tableState).toBe('ready');
    expect(await index.headOf(digestOf(1))).toBeUndefined();
    expect(await index.headOf(digestOf(104))).toEqual(metaOf(record(104)));
  });

  it('stops a build when asked, before the database closes', async () => {
    const index = new BlobIndex(db, 100);
    await index.loadUsage();
    for (let n = 0; n < 50; n++) await index.put(digestOf(n), record(n));
    const building = index.buildTable(1000);
    await index.stopTable();
    await building;
    expect(index.tableState).not.toBe('building');
    expect(await index.headOf(digestOf(3))).toEqual(metaOf(record(3)));
  });
});
