// Retention on its own (disk store, LevelDB index, an injected clock): LRU eviction to the low mark, never what is
// in use or pinned, and garbage collection of unreachable content past the grace period.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskBlobStore } from '../../src/cache/blob-store.js';
import { InUse } from '../../src/cache/in-use.js';
import { Retention, type RetentionConfig } from '../../src/cache/retention.js';
import { BlobIndex } from '../../src/index/blob-index.js';
import { openIndex } from '../../src/index/db.js';
import { PinIndex } from '../../src/index/pin-index.js';
import { LevelTagIndex } from '../../src/index/tag-index.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { OCI_MANIFEST } from '../../src/registry/media-types.js';
import type { Digest } from '../../src/registry/reference.js';
import { content } from '../contract/blob-store.contract.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const T0 = Date.UTC(2026, 0, 1);

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

async function setup(config: Partial<RetentionConfig> = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'regmirror-retention-'));
  const store = new DiskBlobStore(dir);
  await store.init();
  const db = await openIndex(dir);
  cleanup.push(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });
  const index = new BlobIndex(db, 100);
  const tags = new LevelTagIndex(db, 100);
  const pins = new PinIndex(db);
  const inUse = new InUse();
  const metrics = new Metrics(new Registry());
  const clock = { now: T0 };
  const storing = new Map<Digest, { mediaType: string; bytes: Buffer }>();
  const retention = new Retention({
    store,
    index,
    tags,
    pins,
    inUse,
    metrics,
    log: pino({ level: 'silent' }),
    config: { maxBytes: undefined, highWatermark: 0.9, lowWatermark: 0.5, gcGrace: HOUR, pins: [], ...config },
    now: () => clock.now,
    storing,
  });
  /** Stores content as a download would, created (and last served) at `at`. */
  const put = async (bytes: Buffer, at: number, mediaType = 'application/octet-stream'): Promise<Digest> => {
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
    const writer = await store.createWriter(digest, bytes.length);
    writer.end(bytes);
    await new Promise((resolve) => writer.once('finish', resolve));
    await writer.commit();
    await index.put(digest, { size: bytes.length, mediaType, manifest: mediaType !== 'application/octet-stream', createdAt: at, lastAccessAt: at });
    return digest;
  };
  const kept = async (digests: Digest[]) => {
    const present = await Promise.all(digests.map(async (d) => (await index.get(d)) !== undefined && (await store.stat(d)) !== undefined));
    return digests.filter((_, i) => present[i]);
  };
  return { retention, index, tags, inUse, metrics, clock, put, kept, storing };
}

/** Five blobs of 200 bytes, served at T0+1 … T0+5 ms. */
async function fiveBlobs(put: (bytes: Buffer, at: number) => Promise<Digest>): Promise<Digest[]> {
  const digests: Digest[] = [];
  for (let i = 1; i <= 5; i++) digests.push(await put(content(200, i).bytes, T0 + i));
  return digests;
}

describe('Retention: eviction', () => {
  it('evicts least recently served content first, down to the low mark, counting accesses not yet flushed', async () => {
    const { retention, index, metrics, put, kept } = await setup({ maxBytes: 1000 });
    const [b1, b2, b3, b4, b5] = (await fiveBlobs(put)) as [Digest, Digest, Digest, Digest, Digest];
    index.touch(b1, T0 + 10); // served since: now the most recent
    await retention.enforceQuota(); // 1000 bytes stored, high mark 900: down to 500
    expect(await kept([b1, b2, b3, b4, b5])).toEqual([b1, b5]);
    expect(index.usage.bytes).toBe(400);
    expect((await metrics.evictions.get()).values[0]?.value).toBe(3);
  });

  it('never evicts a digest in use (being filled or streamed)', async () => {
    const { retention, inUse, put, kept } = await setup({ maxBytes: 1000 });
    const [b1, b2, b3, b4, b5] = (await fiveBlobs(put)) as [Digest, Digest, Digest, Digest, Digest];
    inUse.hold(b1);
    await retention.enforceQuota();
    expect(await kept([b1, b2, b3, b4, b5])).toEqual([b1, b5]);
  });

  it('never evicts content a pin reaches', async () => {
    const { retention, put, kept } = await setup({ maxBytes: 1000, pins: [`docker.io/library/app@${content(200, 2).digest}`] });
    const [b1, b2, b3, b4, b5] = (await fiveBlobs(put)) as [Digest, Digest, Digest, Digest, Digest];
    expect(await retention.pinnedBytes()).toBe(200);
    await retention.enforceQuota();
    expect(await kept([b1, b2, b3, b4, b5])).toEqual([b2, b5]);
  });

  it('makes room for a download before it starts: what is stored plus what is reserved stays under the high mark', async () => {
    const { retention, index, put, kept } = await setup({ maxBytes: 1000 });
    const digests: Digest[] = [];
    for (let i = 1; i <= 4; i++) digests.push(await put(content(200, i).bytes, T0 + i));
    const release = await retention.reserve(200); // 800 stored + 200 coming > 900: down to 500 with the 200 counted
    expect(await kept(digests)).toEqual(digests.slice(3));
    expect(index.usage.bytes).toBe(200);
    release();
  });
});

describe('Retention: garbage collection', () => {
  it('removes unreachable content only once the grace period since it was created or served has passed', async () => {
    const { retention, index, clock, put, kept } = await setup();
    const old = await put(content(100, 1).bytes, T0);
    const served = await put(content(100, 2).bytes, T0);
    index.touch(served, T0 + 90 * MINUTE);
    clock.now = T0 + 30 * MINUTE;
    expect((await retention.gc({ dryRun: false })).removed).toEqual([]);
    expect(retention.lastGc).toEqual({ at: T0 + 30 * MINUTE, removed: 0, bytes: 0 });
    clock.now = T0 + 2 * HOUR;
    const dry = await retention.gc({ dryRun: true });
    expect(dry.removed).toEqual([{ digest: old, size: 100, manifest: false }]);
    expect(await kept([old, served])).toEqual([old, served]);
    // The status page's "last GC" is the last one that removed: a dry run is not it.
    expect(retention.lastGc?.at).toBe(T0 + 30 * MINUTE);
    const report = await retention.gc({ dryRun: false });
    expect(report).toMatchObject({ dryRun: false, bytes: 100, removed: [{ digest: old }] });
    expect(await kept([old, served])).toEqual([served]);
    expect(retention.lastGc).toEqual({ at: T0 + 2 * HOUR, removed: 1, bytes: 100 });
  });

  it('keeps what a cached tag reaches, and what is in use until it is released', async () => {
    const { retention, tags, inUse, clock, put, kept } = await setup();
    const layer = await put(content(300, 1).bytes, T0);
    const loose = await put(content(300, 2).bytes, T0);
    const manifestBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { digest: layer, size: 300 }, layers: [] }));
    const manifest = await put(manifestBytes, T0, OCI_MANIFEST);
    await tags.put({ upstream: 'docker.io', repo: 'library/app', tag: '1', acceptKey: '*', digest: manifest, mediaType: OCI_MANIFEST, size: manifestBytes.length, checkedAt: T0 });
    clock.now = T0 + 2 * HOUR;
    inUse.hold(loose);
    const report = await retention.gc({ dryRun: false });
    expect(report).toMatchObject({ removed: [], reachable: 2 });
    inUse.release(loose);
    expect((await retention.gc({ dryRun: false })).removed).toEqual([{ digest: loose, size: 300, manifest: false }]);
    expect(await kept([layer, loose, manifest])).toEqual([layer, manifest]);
  });
});

describe('Retention: many images sharing content', () => {
  it('keeps everything 30 tags reach through shared layers, removes the one loose blob, and counts pinned bytes once', async () => {
    const { retention, index, tags, clock, put, kept } = await setup({ pins: ['docker.io/library/app:0', 'docker.io/library/app:1'] });
    const base = await put(content(100, 1).bytes, T0);
    const loose = await put(content(100, 2).bytes, T0);
    const layers: Digest[] = [];
    for (let i = 0; i < 31; i++) layers.push(await put(content(50, 100 + i).bytes, T0));
    const manifests: Digest[] = [];
    for (let t = 0; t < 30; t++) {
      // Each image: the base layer, its own layer and its neighbour's (so neighbouring tags share one).
      const layerDescs = [base, layers[t] as Digest, layers[t + 1] as Digest].map((digest) => ({ mediaType: 'application/octet-stream', digest, size: digest === base ? 100 : 50 }));
      const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: layerDescs[1], layers: layerDescs }));
      const manifest = await put(bytes, T0, OCI_MANIFEST);
      manifests.push(manifest);
      await tags.put({ upstream: 'docker.io', repo: 'library/app', tag: String(t), acceptKey: '*', digest: manifest, mediaType: OCI_MANIFEST, size: bytes.length, checkedAt: T0 });
    }
    clock.now = T0 + 2 * HOUR;
    const report = await retention.gc({ dryRun: false });
    expect(report.removed).toEqual([{ digest: loose, size: 100, manifest: false }]);
    expect(report.reachable).toBe(1 + 31 + 30);
    expect(await kept([base, ...layers, ...manifests])).toHaveLength(62);
    // Pins on tags 0 and 1: base once, layers 0–2 once, and the two manifests.
    const pinnedManifests = (await Promise.all(manifests.slice(0, 2).map(async (m) => (await index.get(m))?.size ?? 0))).reduce((a, b) => a + b, 0);
    expect(await retention.pinnedBytes()).toBe(100 + 3 * 50 + pinnedManifests);
  });
});

describe('Retention: removing one image (admin delete)', () => {
  async function untaggedImage() {
    const s = await setup();
    const layer = await s.put(content(300, 7).bytes, T0);
    const manifestBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { digest: layer, size: 300 }, layers: [] }));
    const manifest = await s.put(manifestBytes, T0, OCI_MANIFEST);
    return { ...s, layer, manifest };
  }

  it('removes what only that image reached at once, whatever the grace period', async () => {
    const { retention, clock, layer, manifest, kept } = await untaggedImage();
    clock.now = T0 + 1000;
    const report = await retention.removeUnreferenced([manifest]);
    expect(report).toMatchObject({ bytes: 300 + (report.removed.find((r) => r.manifest)?.size ?? 0), inUse: 0, shared: 0 });
    expect(await kept([layer, manifest])).toEqual([]);
  });

  it('keeps all of an image read since activeSince (offline: a pull may be in progress), counted as in use', async () => {
    const { retention, clock, layer, manifest, kept } = await untaggedImage();
    clock.now = T0 + 1000;
    expect(await retention.removeUnreferenced([manifest], { activeSince: T0 - 1 })).toMatchObject({ removed: [], inUse: 2 });
    expect(await kept([layer, manifest])).toEqual([layer, manifest]);
    // Idle since before activeSince: removed.
    expect((await retention.removeUnreferenced([manifest], { activeSince: T0 + 1 })).removed).toHaveLength(2);
  });
});

describe('Retention: a manifest answered before its file is written', () => {
  it('is followed by GC all the same: a tag recorded before its manifest keeps the layers it names', async () => {
    const { retention, tags, clock, put, kept, storing } = await setup();
    const layer = await put(content(300, 9).bytes, T0);
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { digest: layer, size: 300 }, layers: [] }));
    const manifest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
    // Answered and tagged; its file and record are still being written.
    storing.set(manifest, { mediaType: OCI_MANIFEST, bytes });
    await tags.put({ upstream: 'docker.io', repo: 'library/new', tag: '1', acceptKey: '*', digest: manifest, mediaType: OCI_MANIFEST, size: bytes.length, checkedAt: T0 });
    clock.now = T0 + 2 * HOUR;
    expect((await retention.gc({ dryRun: false })).removed).toEqual([]);
    expect(await kept([layer])).toEqual([layer]);
    // Once no longer pending and still not stored, the layer is what GC would take (the test can fail).
    storing.clear();
    expect((await retention.gc({ dryRun: true })).removed.map((r) => r.digest)).toEqual([layer]);
  });
});
