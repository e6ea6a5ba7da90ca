// ManifestCache in-process: a disk store and LevelDB index in a temp directory, the in-memory TagIndex, an
// injected clock, and an Upstream held in memory that can be told to fail (fault injection, not a registry).
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskBlobStore } from '../../src/cache/blob-store.js';
import { ManifestCache } from '../../src/cache/manifests.js';
import { parseConfig } from '../../src/config/load.js';
import { BlobIndex } from '../../src/index/blob-index.js';
import { openIndex, type IndexDb } from '../../src/index/db.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { acceptClass } from '../../src/registry/media-types.js';
import type { Digest, Repository, Tag } from '../../src/registry/reference.js';
import { UpstreamError } from '../../src/upstream/errors.js';
import type { FetchedManifest, ManifestHead, ManifestRequest, Upstream } from '../../src/upstream/upstream.js';
import { MemoryTagIndex } from '../fixtures/memory-tag-index.js';

const SCHEMA2 = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
/** An old client: one platform's manifest only. */
const NARROW = acceptClass(SCHEMA2);
const DOCKER = acceptClass(`${SCHEMA2}, application/vnd.oci.image.index.v1+json`);
const HOUR = 3_600_000;
const repo = 'library/app' as Repository;
const tag = 'v1' as Tag;

function manifestBytes(n: number): { digest: Digest; bytes: Buffer } {
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: SCHEMA2, n }));
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest, bytes };
}

/** Tags and manifests in memory; `failWith` makes every call throw, as an outage would. */
class MemoryUpstream implements Upstream {
  readonly name = 'docker.io';
  offline = false;
  readonly tags = new Map<string, Digest>();
  readonly manifests = new Map<Digest, Buffer>();
  /** Tags that are an index: what a client that takes no index gets instead (as distribution does). */
  readonly platformOf = new Map<Digest, Digest>();
  readonly calls: string[] = [];
  failWith: Error | undefined;

  publishIndex(tagName: string, n: number): { index: Digest; platform: Digest } {
    const platform = this.publish(`${tagName}-platform`, n + 1000);
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ digest: platform }] }));
    const index = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
    this.tags.set(tagName, index);
    this.manifests.set(index, bytes);
    this.platformOf.set(index, platform);
    return { index, platform };
  }

  private negotiate(digest: Digest, accept: string | undefined): Digest {
    const platform = this.platformOf.get(digest);
    return platform && !acceptClass(accept).accepts(OCI_INDEX) ? platform : digest;
  }

  private typeOf(digest: Digest): string {
    return this.platformOf.has(digest) ? OCI_INDEX : SCHEMA2;
  }

  publish(tagName: string, n: number): Digest {
    const { digest, bytes } = manifestBytes(n);
    this.tags.set(tagName, digest);
    this.manifests.set(digest, bytes);
    return digest;
  }

  private find(reference: string): { digest: Digest; bytes: Buffer } | undefined {
    const digest = reference.startsWith('sha256:') ? (reference as Digest) : this.tags.get(reference);
    const bytes = digest && this.manifests.get(digest);
    return digest && bytes ? { digest, bytes } : undefined;
  }

  resolveManifest(_repo: Repository, reference: string, request: ManifestRequest): Promise<ManifestHead | undefined> {
    this.calls.push(`HEAD ${reference}`);
    if (this.failWith) return Promise.reject(this.failWith);
    const found = this.find(reference);
    const digest = found && this.negotiate(found.digest, request.accept);
    const bytes = digest && this.manifests.get(digest);
    return Promise.resolve(digest && bytes && { digest, mediaType: this.typeOf(digest), size: bytes.length });
  }

  fetchManifest(_repo: Repository, reference: string, request: ManifestRequest): Promise<FetchedManifest | undefined> {
    this.calls.push(`GET ${reference}`);
    if (this.failWith) return Promise.reject(this.failWith);
    const found = this.find(reference);
    const digest = found && this.negotiate(found.digest, request.accept);
    const bytes = digest && this.manifests.get(digest);
    return Promise.resolve(digest && bytes && { digest, bytes, mediaType: this.typeOf(digest) });
  }

  statBlob = () => Promise.resolve(undefined);
  fetchBlob = () => Promise.resolve(undefined);
  listTags = () => Promise.resolve(undefined);
  close = () => Promise.resolve();
}

let dir: string;
let db: IndexDb;
let upstream: MemoryUpstream;
let clock: number;
let metrics: Metrics;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'regmirror-manifests-'));
  db = await openIndex(dir);
  upstream = new MemoryUpstream();
  clock = 1_700_000_000_000;
  metrics = new Metrics(new Registry());
});
afterEach(async () => {
  await db.close();
  // A detached prefetch may still be writing its file: rm retries until it is done.
  await rm(dir, { recursive: true, force: true, maxRetries: 10 });
});

async function cache(
  tags: Record<string, unknown> = {},
  conserving = false,
  tagIndex = new MemoryTagIndex(),
  onFetched?: (repo: Repository, manifest: FetchedManifest) => void,
): Promise<ManifestCache> {
  const store = new DiskBlobStore(dir);
  await store.init();
  return new ManifestCache({
    onFetched,
    store,
    index: new BlobIndex(db, 100),
    tags: tagIndex,
    upstream,
    rateLimit: { conserving: () => conserving },
    tagsConfig: parseConfig({ tags: { ttl: '1h', rules: [], ...tags } }).tags,
    metrics,
    log: pino({ level: 'silent' }),
    memoryBytes: 1 << 20,
    now: () => clock,
  });
}

describe('ManifestCache by tag', () => {
  it('records a tag resolved by HEAD and fetches its body by digest on the next GET, without asking for the tag again', async () => {
    const digest = upstream.publish('v1', 1);
    const manifests = await cache();
    expect(await manifests.byTag(repo, tag, DOCKER, false)).toMatchObject({ digest, source: 'miss', bytes: undefined });
    expect(await manifests.byTag(repo, tag, DOCKER, false)).toMatchObject({ digest, source: 'hit' });
    const got = await manifests.byTag(repo, tag, DOCKER, true);
    expect(got.bytes?.equals(upstream.manifests.get(digest) as Buffer)).toBe(true);
    expect(upstream.calls).toEqual(['HEAD v1', `GET ${digest}`]);
  });

  it('fetches a tag it has never seen with one GET by tag, not a HEAD then a GET (issue 16)', async () => {
    const digest = upstream.publish('v1', 1);
    const manifests = await cache();
    expect(await manifests.byTag(repo, tag, DOCKER, true)).toMatchObject({ digest, source: 'miss' });
    expect(upstream.calls).toEqual(['GET v1']);
    // Recorded as a HEAD-resolved tag would be: within the TTL no upstream contact, a HEAD answered from the record.
    expect(await manifests.byTag(repo, tag, DOCKER, false)).toMatchObject({ digest, source: 'hit' });
    expect(upstream.calls).toEqual(['GET v1']);
  });

  it('asks with a HEAD first for a new tag while the pull allowance is at its reserve: its digest may be here already', async () => {
    const digest = upstream.publish('v1', 1);
    upstream.publish('latest', 1);
    const manifests = await cache({}, true);
    await manifests.byTag(repo, 'latest' as Tag, DOCKER, true);
    upstream.calls.length = 0;
    expect(await manifests.byTag(repo, tag, DOCKER, true)).toMatchObject({ digest, source: 'hit' });
    expect(upstream.calls).toEqual(['HEAD v1']);
  });

  it('remembers a 404 for a GET of a tag upstream does not have', async () => {
    const manifests = await cache();
    await expect(manifests.byTag(repo, tag, DOCKER, true)).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN' });
    await expect(manifests.byTag(repo, tag, DOCKER, true)).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN' });
    expect(upstream.calls).toEqual(['GET v1']);
  });

  it('tells onFetched (blob prefetch) of each manifest GET from upstream for a client, not of its own background work', async () => {
    const digest = upstream.publish('v1', 1);
    const told: string[] = [];
    const manifests = await cache({ staleWhileRevalidate: true }, false, new MemoryTagIndex(), (r, m) => told.push(`${r}@${m.digest}`));
    await manifests.byTag(repo, tag, DOCKER, true, { client: { address: '10.0.0.1' } });
    expect(told).toEqual([`${repo}@${digest}`]);
    await manifests.byTag(repo, tag, DOCKER, true, { client: { address: '10.0.0.1' } }); // from cache: nothing
    const moved = upstream.publish('v1', 2);
    clock += 2 * HOUR;
    await manifests.byTag(repo, tag, DOCKER, true, { client: { address: '10.0.0.1' } }); // answered stale; GET in the background
    await expect.poll(() => upstream.calls.includes(`GET ${moved}`)).toBe(true);
    expect(told).toEqual([`${repo}@${digest}`]);
  });

  it('answers a fetched manifest before its file is written, and from memory meanwhile, even with no memory budget', async () => {
    const digest = upstream.publish('v1', 1);
    const store = new DiskBlobStore(dir);
    await store.init();
    const index = new BlobIndex(db, 100);
    const manifests = new ManifestCache({
      store,
      index,
      tags: new MemoryTagIndex(),
      upstream,
      rateLimit: { conserving: () => false },
      tagsConfig: parseConfig({ tags: { ttl: '1h', rules: [] } }).tags,
      metrics,
      log: pino({ level: 'silent' }),
      memoryBytes: 0,
      now: () => clock,
    });
    const byTag = await manifests.byTag(repo, tag, DOCKER, true);
    const byDigest = await manifests.byDigest(repo, digest, DOCKER, true); // its file is still being written
    expect(byTag.bytes?.equals(upstream.manifests.get(digest) as Buffer)).toBe(true);
    expect(byDigest.bytes?.equals(upstream.manifests.get(digest) as Buffer)).toBe(true);
    await expect.poll(async () => (await index.get(digest))?.manifest).toBe(true);
    expect((await manifests.byDigest(repo, digest, DOCKER, true)).source).toBe('hit');
    expect(upstream.calls.filter((c) => c.startsWith('GET'))).toHaveLength(1);
  });

  it('asks nothing within the TTL, revalidates with one HEAD after it, and GETs only a moved tag', async () => {
    upstream.publish('v1', 1);
    const manifests = await cache();
    await manifests.byTag(repo, tag, DOCKER, true);
    upstream.calls.length = 0;
    clock += HOUR - 1;
    await manifests.byTag(repo, tag, DOCKER, true);
    expect(upstream.calls).toEqual([]);
    clock += 2;
    await manifests.byTag(repo, tag, DOCKER, true);
    expect(upstream.calls).toEqual(['HEAD v1']);
    const moved = upstream.publish('v1', 2);
    clock += HOUR;
    expect((await manifests.byTag(repo, tag, DOCKER, true)).digest).toBe(moved);
    expect(upstream.calls).toEqual(['HEAD v1', 'HEAD v1', `GET ${moved}`]);
  });

  it('serves a HEAD-recorded tag as stale while upstream fails, up to maxStale', async () => {
    const digest = upstream.publish('v1', 1);
    const manifests = await cache({ maxStale: '3h' });
    await manifests.byTag(repo, tag, DOCKER, false);
    await manifests.byDigest(repo, digest, DOCKER, true);
    upstream.failWith = new UpstreamError('upstream unreachable');
    clock += 2 * HOUR;
    expect(await manifests.byTag(repo, tag, DOCKER, false)).toMatchObject({ digest, source: 'stale' });
    expect(await manifests.byTag(repo, tag, DOCKER, true)).toMatchObject({ digest, source: 'stale' });
    clock += 2 * HOUR;
    await expect(manifests.byTag(repo, tag, DOCKER, false)).rejects.toBeInstanceOf(UpstreamError);
  });

  it('answers a GET of a tag whose body never arrived with the outage, not a body it does not have', async () => {
    upstream.publish('v1', 1);
    const manifests = await cache();
    await manifests.byTag(repo, tag, DOCKER, false);
    upstream.failWith = new UpstreamError('upstream unreachable');
    clock += 2 * HOUR;
    await expect(manifests.byTag(repo, tag, DOCKER, true)).rejects.toBeInstanceOf(UpstreamError);
    expect(await manifests.byTag(repo, tag, DOCKER, false)).toMatchObject({ source: 'stale' });
  });

  it('serves cached tags without a HEAD while the pull allowance is at its reserve', async () => {
    upstream.publish('v1', 1);
    const manifests = await cache({}, true);
    await manifests.byTag(repo, tag, DOCKER, true);
    upstream.calls.length = 0;
    clock += 2 * HOUR;
    expect((await manifests.byTag(repo, tag, DOCKER, true)).source).toBe('stale');
    expect(upstream.calls).toEqual([]);
  });

  it('drops a tag upstream deleted and remembers the 404; keepDeleted serves the last digest instead', async () => {
    upstream.publish('v1', 1);
    const dropping = await cache();
    await dropping.byTag(repo, tag, DOCKER, true);
    upstream.tags.delete('v1');
    clock += 2 * HOUR;
    await expect(dropping.byTag(repo, tag, DOCKER, true)).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN' });
    await expect(dropping.byTag(repo, tag, DOCKER, false)).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN' });
    // The first GET was one GET by tag; the revalidation one HEAD; the second 404 came from memory.
    expect(upstream.calls).toEqual(['GET v1', 'HEAD v1']);

    const digest = upstream.publish('v1', 3);
    const keeping = await cache({ keepDeleted: true });
    await keeping.byTag(repo, tag, DOCKER, true);
    upstream.tags.delete('v1');
    clock += 2 * HOUR;
    expect(await keeping.byTag(repo, tag, DOCKER, true)).toMatchObject({ digest, source: 'stale' });
  });

  it('never hands a client a media type it did not accept', async () => {
    upstream.publish('v1', 1);
    const manifests = await cache();
    await expect(manifests.byTag(repo, tag, acceptClass('application/vnd.oci.image.index.v1+json'), true)).rejects.toMatchObject({
      code: 'MANIFEST_UNKNOWN',
    });
  });

  it('never answers a client that takes an index with the one-platform record of a narrower client while upstream can say better', async () => {
    const { index, platform } = upstream.publishIndex('v1', 1);
    const manifests = await cache();
    expect((await manifests.byTag(repo, tag, NARROW, false)).digest).toBe(platform);
    expect((await manifests.byTag(repo, tag, DOCKER, false)).digest).toBe(index);
    upstream.failWith = new UpstreamError('upstream unreachable');
    clock += 2 * HOUR;
    expect(await manifests.byTag(repo, tag, DOCKER, false)).toMatchObject({ digest: index, source: 'stale' });
    expect(await manifests.byTag(repo, tag, NARROW, false)).toMatchObject({ digest: platform, source: 'stale' });
  });

  it('falls back to the narrower record during an outage when that is all it has', async () => {
    const { platform } = upstream.publishIndex('v1', 1);
    const manifests = await cache();
    await manifests.byTag(repo, tag, NARROW, false);
    upstream.failWith = new UpstreamError('upstream unreachable');
    expect(await manifests.byTag(repo, tag, DOCKER, false)).toMatchObject({ digest: platform, source: 'stale' });
  });

  it('records a moved tag from a HEAD without spending a pull on its body', async () => {
    upstream.publish('v1', 1);
    const manifests = await cache();
    await manifests.byTag(repo, tag, DOCKER, true);
    const moved = upstream.publish('v1', 2);
    clock += 2 * HOUR;
    upstream.calls.length = 0;
    expect((await manifests.byTag(repo, tag, DOCKER, false)).digest).toBe(moved);
    expect(upstream.calls).toEqual(['HEAD v1']);
    expect((await manifests.byTag(repo, tag, DOCKER, true)).digest).toBe(moved);
    expect(upstream.calls).toEqual(['HEAD v1', `GET ${moved}`]);
  });

  it('under keepDeleted, asks again after the TTL and keeps when upstream last had the tag', async () => {
    upstream.publish('v1', 1);
    const tags = new MemoryTagIndex();
    const manifests = await cache({ keepDeleted: true }, false, tags);
    await manifests.byTag(repo, tag, DOCKER, true);
    const confirmed = clock;
    upstream.tags.delete('v1');
    clock += 2 * HOUR;
    upstream.calls.length = 0;
    await manifests.byTag(repo, tag, DOCKER, true);
    await manifests.byTag(repo, tag, DOCKER, true);
    expect(upstream.calls).toEqual(['HEAD v1']);
    clock += 2 * HOUR;
    await manifests.byTag(repo, tag, DOCKER, true);
    expect(upstream.calls).toEqual(['HEAD v1', 'HEAD v1']);
    expect((await tags.get({ upstream: 'docker.io', repo, tag, acceptKey: DOCKER.key }))?.checkedAt).toBe(confirmed);
  });

  it('keeps counting pulls of a tag when it moves to a new digest', async () => {
    upstream.publish('v1', 1);
    const tags = new MemoryTagIndex();
    const manifests = await cache({}, false, tags);
    for (let i = 0; i < 3; i++) await manifests.byTag(repo, tag, DOCKER, true);
    await tags.flush();
    const moved = upstream.publish('v1', 2);
    clock += 2 * HOUR;
    expect((await manifests.byTag(repo, tag, DOCKER, true)).digest).toBe(moved);
    await tags.flush();
    expect(await tags.get({ upstream: 'docker.io', repo, tag, acceptKey: DOCKER.key })).toMatchObject({ digest: moved, hits: 4 });
  });

  it('offline, answers a client that takes an index with the one-platform record, and records it for that client', async () => {
    const { platform } = upstream.publishIndex('v1', 1);
    const tags = new MemoryTagIndex();
    const manifests = await cache({}, false, tags);
    await manifests.byTag(repo, tag, NARROW, true);
    upstream.offline = true;
    expect(await manifests.byTag(repo, tag, DOCKER, true)).toMatchObject({ digest: platform, source: 'hit' });
    expect((await tags.get({ upstream: 'docker.io', repo, tag, acceptKey: DOCKER.key }))?.digest).toBe(platform);
  });
});
