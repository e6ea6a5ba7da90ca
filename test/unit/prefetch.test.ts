// BlobPrefetch (issue 16): the blobs of an image manifest fetched for a client start downloading at once, through
// the shared downloads, so the client's own requests join them. Disk store, LevelDB index, in-memory upstream.
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
import type { ManifestCache } from '../../src/cache/manifests.js';
import { BlobPrefetch } from '../../src/cache/prefetch.js';
import { BlobIndex } from '../../src/index/blob-index.js';
import { openIndex } from '../../src/index/db.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { RegistryError } from '../../src/registry/errors.js';
import { DOCKER_MANIFEST, OCI_INDEX } from '../../src/registry/media-types.js';
import type { Digest, Repository } from '../../src/registry/reference.js';
import { UpstreamError } from '../../src/upstream/errors.js';
import type { FetchedManifest, UpstreamBlob } from '../../src/upstream/upstream.js';
import { content } from '../contract/blob-store.contract.js';
import { MemoryUpstream } from '../fixtures/memory-upstream.js';

const repo = 'library/app' as Repository;
let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

/** Refuses the first `failures` blob GETs with a 503, as an upstream in trouble would. */
class FlakyUpstream extends MemoryUpstream {
  failures = 0;
  override fetchBlob(r: Repository, digest: Digest, options: { offset?: number | undefined; signal?: AbortSignal | undefined }): Promise<UpstreamBlob | undefined> {
    if (this.failures > 0) {
      this.failures--;
      this.fetches.push({ digest, offset: options.offset });
      return Promise.reject(new UpstreamError('upstream answered 503', { status: 503 }));
    }
    return super.fetchBlob(r, digest, options);
  }
}

const noManifests: Pick<ManifestCache, 'byDigest'> = {
  byDigest: () => Promise.reject(new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown')),
};

async function setup(o: { limit?: number; room?: boolean } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'regmirror-prefetch-'));
  const store = new DiskBlobStore(dir);
  await store.init();
  const db = await openIndex(dir);
  const index = new BlobIndex(db, 100);
  const upstream = new FlakyUpstream();
  const inUse = new InUse();
  const log = pino({ level: 'silent' });
  const fills = new BlobFills({ store, index, metrics: new Metrics(new Registry()), log, inUse });
  const blobs = new BlobCache({ store, index, fills, upstream, fillTimeoutMs: 30_000, manifests: noManifests, inUse });
  const retention = { hasRoomFor: () => o.room ?? true };
  const prefetch = new BlobPrefetch({ blobs, fills, index, retention, limit: o.limit ?? 4, log });
  cleanup.push(async () => {
    await fills.abortAll();
    await db.close();
    await rm(dir, { recursive: true, force: true, maxRetries: 10 });
  });
  return { blobs, fills, upstream, prefetch };
}

/** An image manifest naming a config and `layers` layers, each added to the upstream. */
function image(upstream: MemoryUpstream, layers: number): { manifest: FetchedManifest; blobs: Array<{ digest: Digest; bytes: Buffer }> } {
  const blobs = Array.from({ length: layers + 1 }, (_, i) => content(100_000 + i * 1000, i + 1));
  for (const b of blobs) upstream.add(b.digest, b.bytes);
  const [config, ...rest] = blobs.map((b) => ({ mediaType: 'application/octet-stream', digest: b.digest, size: b.bytes.length }));
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_MANIFEST, config, layers: rest }));
  return { manifest: { digest: content(10, 99).digest, mediaType: DOCKER_MANIFEST, bytes }, blobs };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function fetchesOf(upstream: MemoryUpstream, digest: Digest): number {
  return upstream.fetches.filter((f) => f.digest === digest).length;
}

describe('BlobPrefetch', () => {
  it('starts the downloads of the config and layers at once; the client joins them: one upstream GET per blob', async () => {
    const { blobs, upstream, prefetch } = await setup();
    const { manifest, blobs: wanted } = image(upstream, 3);
    prefetch.start(repo, manifest);
    await expect.poll(() => upstream.fetches.length).toBe(4);
    const got = await Promise.all(wanted.map(async (b) => (await readAll((await blobs.get(repo, b.digest))!.read())).equals(b.bytes)));
    expect(got).toEqual([true, true, true, true]);
    for (const b of wanted) expect(fetchesOf(upstream, b.digest)).toBe(1);
  });

  it('keeps one upstream GET per blob when clients ask at the very moment the prefetch starts', async () => {
    const { blobs, upstream, prefetch } = await setup();
    const { manifest, blobs: wanted } = image(upstream, 3);
    prefetch.start(repo, manifest);
    prefetch.start(repo, manifest); // a second client's GET of the same manifest starts nothing more
    const handles = await Promise.all(wanted.flatMap((b) => [blobs.get(repo, b.digest), blobs.get(repo, b.digest)]));
    for (const [i, h] of handles.entries()) expect((await readAll(h!.read())).equals(wanted[Math.floor(i / 2)]!.bytes)).toBe(true);
    for (const b of wanted) expect(fetchesOf(upstream, b.digest)).toBe(1);
  });

  it('does not poison the client: a prefetch that failed leaves the client to download the blob afresh', async () => {
    const { blobs, fills, upstream, prefetch } = await setup({ limit: 1 });
    const { manifest, blobs: wanted } = image(upstream, 0);
    const config = wanted[0]!;
    upstream.failures = 1;
    prefetch.start(repo, manifest);
    await expect.poll(() => upstream.fetches.length).toBe(1);
    await fills.settled(config.digest);
    const handle = await blobs.get(repo, config.digest);
    expect(handle?.source).toBe('miss');
    expect((await readAll(handle!.read())).equals(config.bytes)).toBe(true);
    expect(fetchesOf(upstream, config.digest)).toBe(2);
  });

  it('stops at the quota: nothing is prefetched that would pass the high mark, and the client still gets the blob', async () => {
    const { blobs, upstream, prefetch } = await setup({ room: false });
    const { manifest, blobs: wanted } = image(upstream, 2);
    prefetch.start(repo, manifest);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(upstream.fetches).toEqual([]);
    const first = wanted[0]!;
    expect((await readAll((await blobs.get(repo, first.digest))!.read())).equals(first.bytes)).toBe(true);
    expect(upstream.fetches.map((f) => f.digest)).toEqual([first.digest]);
  });

  it('runs at most `limit` downloads at a time', async () => {
    const { upstream, prefetch } = await setup({ limit: 1 });
    let open!: () => void;
    upstream.faults.push({ kind: 'pause', after: 10, until: new Promise<void>((resolve) => (open = resolve)) });
    const { manifest } = image(upstream, 2);
    prefetch.start(repo, manifest);
    await expect.poll(() => upstream.fetches.length).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(upstream.fetches.length).toBe(1);
    open();
    await expect.poll(() => upstream.fetches.length).toBe(3);
  });

  it('prefetches nothing for an index, nor a blob already stored', async () => {
    const { blobs, fills, upstream, prefetch } = await setup();
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ digest: content(5, 7).digest, size: 5 }] }));
    prefetch.start(repo, { digest: content(11, 98).digest, mediaType: OCI_INDEX, bytes: index });
    const { manifest, blobs: wanted } = image(upstream, 1);
    const stored = wanted[1]!;
    await readAll((await blobs.get(repo, stored.digest))!.read());
    await fills.settled(stored.digest);
    prefetch.start(repo, manifest);
    await expect.poll(() => upstream.fetches.length).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(upstream.fetches.map((f) => f.digest)).toEqual([stored.digest, wanted[0]!.digest]);
  });
});
