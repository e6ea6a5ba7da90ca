// Issue 14: allow lists (globs over the repository path, resolved per registry) and the repository guard of a
// registry pulled with credentials: a digest is served for a repository only once that repository holds it.
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
import { RepoGuard } from '../../src/cache/repo-guard.js';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { registriesOf } from '../../src/config/registries.js';
import { BlobIndex } from '../../src/index/blob-index.js';
import { openIndex } from '../../src/index/db.js';
import { RepoBlobIndex } from '../../src/index/repo-blob-index.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { RegistryError } from '../../src/registry/errors.js';
import type { Digest, Repository } from '../../src/registry/reference.js';
import { repositoryAllowed } from '../../src/registry/repository-glob.js';
import { content } from '../contract/blob-store.contract.js';
import { MemoryUpstream } from '../fixtures/memory-upstream.js';

const secretRepo = 'private/app' as Repository;
const publicRepo = 'library/alpine' as Repository;

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

/** An upstream where each repository holds only the digests given to it, as a registry with private repositories. */
class PerRepoUpstream extends MemoryUpstream {
  readonly holdings = new Map<Repository, Set<Digest>>();
  readonly statsFor: string[] = [];
  hold(repo: Repository, digest: Digest): void {
    this.holdings.set(repo, (this.holdings.get(repo) ?? new Set()).add(digest));
  }
  override statBlob(repo: Repository, digest: Digest) {
    this.statsFor.push(`${repo}@${digest}`);
    return this.holdings.get(repo)?.has(digest) ? super.statBlob(repo, digest) : Promise.resolve(undefined);
  }
  override fetchBlob(repo: Repository, digest: Digest, options: { offset?: number | undefined; signal?: AbortSignal | undefined }) {
    return this.holdings.get(repo)?.has(digest) ? super.fetchBlob(repo, digest, options) : Promise.resolve(undefined);
  }
}

async function setup(options: { guarded: boolean }) {
  const dir = await mkdtemp(join(tmpdir(), 'regmirror-guard-'));
  const store = new DiskBlobStore(dir);
  await store.init();
  const db = await openIndex(dir);
  const index = new BlobIndex(db, 100);
  const upstream = new PerRepoUpstream();
  const inUse = new InUse();
  const log = pino({ level: 'silent' });
  const fills = new BlobFills({ store, index, metrics: new Metrics(new Registry()), log, inUse });
  cleanup.push(async () => {
    await fills.abortAll();
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });
  const guard = options.guarded ? new RepoGuard({ index: new RepoBlobIndex(db, 100), upstream, log }) : undefined;
  const manifests = { byDigest: () => Promise.reject(new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown')) };
  const blobs = new BlobCache({ store, index, fills, upstream, fillTimeoutMs: 30_000, manifests, inUse, guard });
  return { blobs, upstream, fills };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('allow lists', () => {
  it('matches globs over the whole repository path, * crossing slashes, short Docker Hub names too', () => {
    const allows = repositoryAllowed(['library/*', 'myorg/*', 'alp?ne']);
    expect(allows('library/alpine' as Repository)).toBe(true);
    expect(allows('myorg/team/app' as Repository)).toBe(true);
    expect(allows('someuser/app' as Repository)).toBe(false);
    expect(allows('myorgx/app' as Repository)).toBe(false);
    // `?` is a literal, not a wildcard; `library/alp?ne` matches as the short name `alp?ne` only.
    expect(allows('other/alpine' as Repository)).toBe(false);
    expect(repositoryAllowed(['alpine'])('library/alpine' as Repository)).toBe(true);
    expect(repositoryAllowed(undefined)('anything/at/all' as Repository)).toBe(true);
    expect(repositoryAllowed([])('library/alpine' as Repository)).toBe(false);
  });

  it("resolves allow per registry: an entry's own, else upstream.allow for the registry upstream names only", () => {
    const single = registriesOf(parseConfig({ upstream: { allow: ['library/*'] } }));
    expect(single.list[0]?.allow).toEqual(['library/*']);
    const several = registriesOf(
      parseConfig({ upstream: { allow: ['library/*'] }, upstreams: [{ name: 'docker.io' }, { name: 'ghcr.io', allow: ['me/*'] }, { name: 'quay.io' }] }),
    );
    expect(several.list.map((r) => r.allow)).toEqual([['library/*'], ['me/*'], undefined]);
    expect(registriesOf(parseConfig({})).list[0]?.allow).toBeUndefined();
    expect(() => parseConfig({ upstream: { allow: [''] } })).toThrow(ConfigError);
  });
});

describe('RepoGuard in the blob path', () => {
  it("does not serve a stored private blob for another repository, and asks upstream once per repository it holds", async () => {
    const { blobs, upstream, fills } = await setup({ guarded: true });
    const blob = content(4096, 11);
    upstream.add(blob.digest, blob.bytes);
    upstream.hold(secretRepo, blob.digest);
    const first = await blobs.get(secretRepo, blob.digest);
    expect(first && (await readAll(first.read()))).toEqual(blob.bytes);
    await fills.settled(blob.digest);
    expect(await blobs.get(publicRepo, blob.digest)).toBeUndefined();
    expect(await blobs.head(publicRepo, blob.digest)).toBeUndefined();
    const again = await blobs.get(secretRepo, blob.digest);
    expect(again?.source).toBe('hit');
    await again?.release();
    // The owner: one HEAD, then the record; the other repository: asked each time, never served.
    expect(upstream.statsFor.filter((s) => s.startsWith(secretRepo))).toHaveLength(1);
    expect(upstream.fetches).toHaveLength(1);
  });

  it("does not let another repository join a private blob's download in flight", async () => {
    const { blobs, upstream } = await setup({ guarded: true });
    const blob = content(256 * 1024, 12);
    upstream.add(blob.digest, blob.bytes);
    upstream.hold(secretRepo, blob.digest);
    let resume = (): void => undefined;
    upstream.faults.push({ kind: 'pause', after: 64 * 1024, until: new Promise<void>((resolve) => (resume = resolve)) });
    const owner = await blobs.get(secretRepo, blob.digest);
    expect(owner?.source).toBe('miss');
    expect(await blobs.get(publicRepo, blob.digest)).toBeUndefined();
    resume();
    expect(owner && (await readAll(owner.read()))).toEqual(blob.bytes);
  });

  it('without credentials (no guard) shares a stored digest with every repository, as before', async () => {
    const { blobs, upstream, fills } = await setup({ guarded: false });
    const blob = content(4096, 13);
    upstream.add(blob.digest, blob.bytes);
    upstream.hold(publicRepo, blob.digest);
    const first = await blobs.get(publicRepo, blob.digest);
    await readAll((first as NonNullable<typeof first>).read());
    await fills.settled(blob.digest);
    const other = await blobs.get('someone/else' as Repository, blob.digest);
    expect(other?.source).toBe('hit');
    await other?.release();
    expect(upstream.statsFor).toEqual([]);
  });
});
