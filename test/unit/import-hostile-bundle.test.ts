// Hostile bundles (issue 14, finding 9): a fan-out that must not hang the walk, an oversized index.json, media
// types that would break response headers, and a refused import that must leave neither files nor records.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskBlobStore } from '../../src/cache/blob-store.js';
import type { BlobRecord } from '../../src/index/blob-index.js';
import type { TagEntry } from '../../src/index/tag-index.js';
import { OCI_INDEX, OCI_MANIFEST } from '../../src/registry/media-types.js';
import type { Digest } from '../../src/registry/reference.js';
import { importBundle, type ImportDeps } from '../../src/seed/import.js';
import { BundleError } from '../../src/seed/layout-source.js';
import { REF_NAME } from '../../src/seed/oci-layout.js';

const LAYER = 'application/vnd.oci.image.layer.v1.tar';
const CONFIG = 'application/vnd.oci.image.config.v1+json';

let dir: string;
let bundle: string;
let dataDir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'regmirror-hostile-'));
  bundle = join(dir, 'bundle');
  dataDir = join(dir, 'data');
  await mkdir(join(bundle, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(bundle, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes one blob into the bundle and returns its descriptor. */
async function blob(content: string | Buffer, mediaType: string) {
  const bytes = Buffer.from(content);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
  await writeFile(join(bundle, 'blobs', 'sha256', digest.slice(7)), bytes);
  return { mediaType, digest, size: bytes.length };
}

async function indexJson(manifests: unknown[], padding = 0): Promise<void> {
  await writeFile(join(bundle, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }) + ' '.repeat(padding));
}

/** The import's view of the cache: a real store on disk, records, tags and pins in memory. */
async function cache(overrides: Partial<Pick<ImportDeps, 'tags'>> = {}) {
  const store = new DiskBlobStore(dataDir);
  await store.init();
  const records = new Map<Digest, BlobRecord>();
  const tags: TagEntry[] = [];
  const deps: ImportDeps = {
    registries: new Set(['docker.io']),
    store,
    index: {
      get: (d) => Promise.resolve(records.get(d)),
      put: (d, r) => Promise.resolve(void records.set(d, r)),
      delete: (d) => Promise.resolve(void records.delete(d)),
    },
    tags: { put: (e) => Promise.resolve(void tags.push(e)), ...overrides.tags },
    pins: { add: () => Promise.resolve(true) },
  };
  const files = async () => (await readdir(join(dataDir, 'blobs'), { recursive: true })).filter((p) => /[a-f0-9]{64}$/.test(p));
  return { deps, records, tags, files };
}

async function expectRefused(importing: Promise<unknown>, message: RegExp): Promise<void> {
  const err = await importing.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BundleError);
  expect((err as BundleError).message).toMatch(message);
}

async function image(layerType = LAYER) {
  const layer = await blob('layer', layerType);
  const config = await blob('{}', CONFIG);
  return blob(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [layer] }), OCI_MANIFEST);
}

describe('import of a hostile bundle', () => {
  it('walks an index of 3,000 manifests × 3,000 layers in bounded time', async () => {
    const layer = await blob('layer', LAYER);
    const config = await blob('{}', CONFIG);
    const manifest = await blob(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: Array(3000).fill(layer) }), OCI_MANIFEST);
    const platforms = Array.from({ length: 3000 }, (_, i) => ({ ...manifest, platform: { os: 'linux', architecture: `a${i}` } }));
    const top = await blob(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: platforms }), OCI_INDEX);
    await indexJson([{ ...top, annotations: { [REF_NAME]: 'docker.io/library/fan:1' } }]);
    const { deps, records } = await cache();
    const started = Date.now();
    const summary = await importBundle(deps, bundle);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(summary.tags).toEqual(['docker.io/library/fan:1']);
    expect(records.get(layer.digest)?.mediaType).toBe(LAYER);
  }, 15_000);

  it('refuses an index.json over 16 MiB before reading it whole', async () => {
    await indexJson([], 17 * 1024 * 1024);
    const { deps } = await cache();
    await expectRefused(importBundle(deps, bundle), /index\.json.*16 MiB/);
  });

  it.each([
    ['CR/LF', `${LAYER}\r\nx-injected: 1`],
    ['U+2028', `${LAYER}\u2028`],
    ['no subtype', 'application'],
    ['a space', 'text/html; charset=utf-8'],
  ])('refuses a layer descriptor whose mediaType has %s', async (_what, mediaType) => {
    const manifest = await image(mediaType);
    await indexJson([{ ...manifest, annotations: { [REF_NAME]: 'docker.io/library/bad:1' } }]);
    const { deps, records, files } = await cache();
    await expectRefused(importBundle(deps, bundle), /invalid mediaType/);
    expect(records.size).toBe(0);
    expect(await files()).toEqual([]);
  });

  it('refuses an index.json entry whose mediaType is not type/subtype', async () => {
    const manifest = await image();
    await indexJson([{ ...manifest, mediaType: `${OCI_MANIFEST}\n`, annotations: { [REF_NAME]: 'docker.io/library/bad:1' } }]);
    const { deps, tags } = await cache();
    await expectRefused(importBundle(deps, bundle), /index\.json: .* invalid mediaType/);
    expect(tags).toEqual([]);
  });

  it('leaves no file and no record behind when the import fails after writing records', async () => {
    const manifest = await image();
    await indexJson([{ ...manifest, annotations: { [REF_NAME]: 'docker.io/library/app:1' } }]);
    const { deps, records, files } = await cache({ tags: { put: () => Promise.reject(new Error('index closed')) } });
    await expect(importBundle(deps, bundle)).rejects.toThrow('index closed');
    expect([...records.keys()]).toEqual([]);
    expect(await files()).toEqual([]);
  });

  it('still imports a well-formed bundle', async () => {
    const manifest = await image(`${LAYER}+gzip`);
    await indexJson([{ ...manifest, annotations: { [REF_NAME]: 'docker.io/library/app:1' } }]);
    const { deps, records, files } = await cache();
    const summary = await importBundle(deps, bundle);
    expect(summary).toMatchObject({ blobs: 3, tags: ['docker.io/library/app:1'] });
    expect(records.size).toBe(3);
    expect(await files()).toHaveLength(3);
  });
});
