// Which manifests and blobs a seed takes, through the one manifest walk, with the cache faked in memory: the
// requested platforms of an index, config and layers of each, a bad manifest as a typed error.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { BlobHandle } from '../../src/cache/blobs.js';
import type { ManifestAnswer } from '../../src/cache/manifests.js';
import { ManifestError } from '../../src/registry/manifest.js';
import { DOCKER_LIST, DOCKER_MANIFEST } from '../../src/registry/media-types.js';
import { parseImageReference, type Digest } from '../../src/registry/reference.js';
import { seedImage, type SeedDeps, type SeedProgress } from '../../src/seed/seed.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const quiet: SeedProgress = { start: () => undefined, advance: () => undefined, end: () => undefined };

/** Every blob already cached; manifests answered from a map; what was asked is recorded. */
function fakeCache(manifests: Map<Digest, Buffer>, top: Digest) {
  const asked: Digest[] = [];
  const pinned: string[] = [];
  const answer = (digest: Digest): ManifestAnswer => {
    const bytes = manifests.get(digest);
    if (!bytes) throw new Error(`unknown ${digest}`);
    asked.push(digest);
    return { digest, mediaType: DOCKER_MANIFEST, size: bytes.length, bytes, source: 'hit' };
  };
  const cached = (size: number): BlobHandle => ({ size, mediaType: 'application/octet-stream', manifest: false, source: 'hit', read: () => Readable.from([]), release: () => Promise.resolve() });
  const deps: SeedDeps = {
    upstreamName: 'docker.io',
    manifests: { byTag: () => Promise.resolve(answer(top)), byDigest: (_repo, digest) => Promise.resolve(answer(digest)) },
    blobs: { lookup: () => Promise.resolve(cached(7)), fetch: () => Promise.resolve(undefined) },
    fills: { settled: () => Promise.resolve() },
    index: { get: () => Promise.resolve(undefined) },
    pins: {
      add: (ref) => {
        pinned.push(ref);
        return Promise.resolve(true);
      },
    },
  };
  return { deps, asked, pinned };
}

const image = (config: Digest, layers: Digest[]) => json({ schemaVersion: 2, mediaType: DOCKER_MANIFEST, config: { digest: config, size: 7 }, layers: layers.map((digest) => ({ digest, size: 7 })) });

function multiArch() {
  return new Map<Digest, Buffer>([
    [
      d('f'),
      json({
        schemaVersion: 2,
        mediaType: DOCKER_LIST,
        manifests: [
          { digest: d('a'), size: 1, platform: { os: 'linux', architecture: 'amd64' } },
          { digest: d('b'), size: 1, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
        ],
      }),
    ],
    [d('a'), image(d('c'), [d('1'), d('2')])],
    [d('b'), image(d('e'), [d('1'), d('3')])],
  ]);
}

describe('seedImage', () => {
  it('reads the index and the requested platform only, and takes its config and layers', async () => {
    const cache = fakeCache(multiArch(), d('f'));
    const result = await seedImage(cache.deps, parseImageReference('multi:1'), [{ os: 'linux', architecture: 'arm64' }], quiet);
    expect(cache.asked).toEqual([d('f'), d('b')]);
    expect(result).toMatchObject({ ref: 'docker.io/library/multi:1', digest: d('f'), platforms: ['linux/arm64/v8'], blobs: 3, bytesCached: 21, bytesFetched: 0 });
    expect(cache.pinned).toEqual(['docker.io/library/multi:1']);
  });

  it('takes every platform, a layer they share once', async () => {
    const cache = fakeCache(multiArch(), d('f'));
    const result = await seedImage(cache.deps, parseImageReference('multi:1'), 'all', quiet);
    expect(result).toMatchObject({ platforms: ['linux/amd64', 'linux/arm64/v8'], blobs: 5 });
  });

  it('names the platforms an index has when none was requested', async () => {
    const cache = fakeCache(multiArch(), d('f'));
    await expect(seedImage(cache.deps, parseImageReference('multi:1'), [{ os: 'windows', architecture: 'amd64' }], quiet)).rejects.toThrow(
      'docker.io/library/multi:1: none of the requested platforms (has linux/amd64, linux/arm64/v8)',
    );
  });

  it('seeds a single-platform image as "single"', async () => {
    const cache = fakeCache(new Map([[d('a'), image(d('c'), [d('1')])]]), d('a'));
    expect(await seedImage(cache.deps, parseImageReference('single:1'), 'all', quiet)).toMatchObject({ platforms: ['single'], blobs: 2 });
  });

  it('refuses a manifest that is not JSON with a typed error, not a SyntaxError', async () => {
    const cache = fakeCache(new Map([[d('a'), Buffer.from('<html>')]]), d('a'));
    const seeding = seedImage(cache.deps, parseImageReference('broken:1'), 'all', quiet);
    await expect(seeding).rejects.toBeInstanceOf(ManifestError);
    await expect(seeding).rejects.toMatchObject({ code: 'BAD_MANIFEST', digest: d('a') });
  });
});
