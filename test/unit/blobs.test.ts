// BlobCache: the blob path behind one call. A stored file, else the shared download, else a manifest asked for on
// /blobs/; and HEAD from the index or upstream's HEAD. Disk store, LevelDB index, in-memory upstream.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskBlobStore } from '../../src/cache/blob-store.js';
import { BlobCache } from '../../src/cache/blobs.js';
import { BlobFills } from '../../src/cache/fills.js';
import { InUse } from '../../src/cache/in-use.js';
import type { ManifestAnswer, ManifestCache } from '../../src/cache/manifests.js';
import { BlobIndex } from '../../src/index/blob-index.js';
import { openIndex } from '../../src/index/db.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { RegistryError } from '../../src/registry/errors.js';
import { OCI_INDEX } from '../../src/registry/media-types.js';
import type { Digest, Repository } from '../../src/registry/reference.js';
import { content } from '../contract/blob-store.contract.js';
import { MemoryUpstream } from '../fixtures/memory-upstream.js';

const repo = 'library/test' as Repository;
let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

/** The manifest cache as the blob path sees it: answers from a map, MANIFEST_UNKNOWN otherwise. */
class Manifests implements Pick<ManifestCache, 'byDigest'> {
  readonly known = new Map<Digest, ManifestAnswer>();
  byDigest(_repo: Repository, digest: Digest): Promise<ManifestAnswer> {
    const answer = this.known.get(digest);
    return answer ? Promise.resolve(answer) : Promise.reject(new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown'));
  }
}

async function setup() {
  const dir = await mkdtemp(join(tmpdir(), 'regmirror-blobs-'));
  const store = new DiskBlobStore(dir);
  await store.init();
  const db = await openIndex(dir);
  const index = new BlobIndex(db, 100);
  const upstream = new MemoryUpstream();
  const inUse = new InUse();
  const manifests = new Manifests();
  const metrics = new Metrics(new Registry());
  const fills = new BlobFills({ store, index, metrics, log: pino({ level: 'silent' }), inUse });
  cleanup.push(async () => {
    await fills.abortAll();
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { blobs: new BlobCache({ store, index, fills, upstream, fillTimeoutMs: 30_000, manifests, inUse }), fills, upstream, inUse, manifests };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe('BlobCache.get', () => {
  it('downloads a missing blob once, coalescing a second request, then serves it as a hit held in use while streamed', async () => {
    const { blobs, fills, upstream, inUse } = await setup();
    const { bytes, digest } = content(200_000);
    upstream.add(digest, bytes, 'application/vnd.oci.image.layer.v1.tar+gzip');
    const [first, second] = await Promise.all([blobs.get(repo, digest), blobs.get(repo, digest)]);
    expect([first?.source, second?.source].sort()).toEqual(['coalesced', 'miss']);
    expect(first).toMatchObject({ size: bytes.length, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', manifest: false });
    expect((await readAll(first!.read())).equals(bytes)).toBe(true);
    expect((await readAll(second!.read({ start: 10, end: 19 }))).equals(bytes.subarray(10, 20))).toBe(true);
    await fills.settled(digest);
    await expect.poll(() => inUse.has(digest)).toBe(false);

    const hit = await blobs.get(repo, digest);
    expect(hit).toMatchObject({ source: 'hit', size: bytes.length, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' });
    expect(hit?.readAt).toBeDefined();
    expect(inUse.has(digest)).toBe(true);
    const stream = hit!.read();
    expect((await readAll(stream)).equals(bytes)).toBe(true);
    await expect.poll(() => inUse.has(digest)).toBe(false);
    const released = await blobs.get(repo, digest);
    await released?.release();
    await released?.release(); // idempotent
    expect(inUse.has(digest)).toBe(false);
    expect(upstream.fetches).toHaveLength(1);
  });

  it('answers a manifest digest asked for on /blobs/ from the manifest cache, with its media type', async () => {
    const { blobs, manifests } = await setup();
    const { bytes, digest } = content(500, 3);
    manifests.known.set(digest, { digest, mediaType: OCI_INDEX, size: bytes.length, bytes, source: 'hit' });
    const blob = await blobs.get(repo, digest);
    expect(blob).toMatchObject({ size: bytes.length, mediaType: OCI_INDEX, manifest: true, source: 'hit' });
    expect((await readAll(blob!.read())).equals(bytes)).toBe(true);
    expect((await readAll(blob!.read({ start: 100, end: 199 }))).equals(bytes.subarray(100, 200))).toBe(true);
  });

  it('answers undefined when neither upstream nor the manifest cache has the digest', async () => {
    const { blobs, upstream } = await setup();
    expect(await blobs.get(repo, content(10, 4).digest)).toBeUndefined();
    expect(upstream.fetches).toHaveLength(1);
  });
});

describe('BlobCache.head', () => {
  it('answers from the index without asking upstream, else from upstream HEAD without starting a download', async () => {
    const { blobs, fills, upstream } = await setup();
    const { bytes, digest } = content(1000, 5);
    upstream.add(digest, bytes, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
    expect(await blobs.head(repo, digest)).toEqual({ size: 1000, mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', manifest: false, source: 'miss' });
    expect(upstream.fetches).toEqual([]);
    await readAll((await blobs.get(repo, digest))!.read());
    await fills.settled(digest);
    expect(await blobs.head(repo, digest)).toMatchObject({ size: 1000, source: 'hit' });
    expect(upstream.stats).toEqual([digest]);
    expect(await blobs.head(repo, content(10, 6).digest)).toBeUndefined();
  });
});
