// The one walk from manifests to what they name, against an in-memory store: order, depth, missing content,
// bad manifests, and the options each caller (gc, ls, export, import, seed) walks with.
import { describe, expect, it } from 'vitest';
import { ManifestError } from '../../src/registry/manifest.js';
import { MissingContentError, walkManifests, type GraphNode, type WalkOptions } from '../../src/registry/manifest-graph.js';
import { OCI_INDEX, OCI_MANIFEST } from '../../src/registry/media-types.js';
import type { Digest } from '../../src/registry/reference.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const CONFIG_TYPE = 'application/vnd.oci.image.config.v1+json';
const LAYER_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';

interface Stored {
  manifest: boolean;
  size: number;
  bytes?: Buffer;
}

/** An in-memory store; `reads` lists the digests whose bytes were asked for. */
function memoryStore() {
  const content = new Map<Digest, Stored>();
  const reads: Digest[] = [];
  const putManifest = (digest: Digest, value: unknown) => {
    const bytes = Buffer.from(JSON.stringify(value));
    content.set(digest, { manifest: true, size: bytes.length, bytes });
  };
  const putBlob = (digest: Digest, size: number) => content.set(digest, { manifest: false, size });
  const hooks = {
    stat: (node: GraphNode) => Promise.resolve(content.get(node.digest)),
    read: (node: GraphNode) => {
      reads.push(node.digest);
      return Promise.resolve(content.get(node.digest)?.bytes);
    },
  };
  return { content, reads, putManifest, putBlob, hooks };
}

const image = (config: Digest, layers: Digest[]) => ({
  schemaVersion: 2,
  mediaType: OCI_MANIFEST,
  config: { mediaType: CONFIG_TYPE, digest: config, size: 10 },
  layers: layers.map((digest) => ({ mediaType: LAYER_TYPE, digest, size: 100 })),
});

const platform = (digest: Digest, architecture: string) => ({ mediaType: OCI_MANIFEST, digest, size: 300, platform: { os: 'linux', architecture } });

/** index → two platform manifests (amd64, arm64) → configs and layers; layer `1` is shared. */
function multiArch() {
  const store = memoryStore();
  store.putManifest(d('a'), image(d('c'), [d('1'), d('2')]));
  store.putManifest(d('b'), image(d('e'), [d('1'), d('3')]));
  store.putManifest(d('f'), { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [platform(d('a'), 'amd64'), platform(d('b'), 'arm64')] });
  for (const blob of ['c', 'e']) store.putBlob(d(blob), 10);
  for (const blob of ['1', '2', '3']) store.putBlob(d(blob), 100);
  return store;
}

/** Garbage collection, pins and export: three levels read, each digest once. */
const gc = { maxDepth: 3, missing: 'skip', platformsOptional: true, badManifest: 'skip', artifactBlobs: true, dedupe: true } as const;

function options<T extends { manifest: boolean }>(base: Omit<WalkOptions<T>, 'stat' | 'read'>, hooks: Pick<WalkOptions<T>, 'stat' | 'read'>): WalkOptions<T> {
  return { ...base, ...hooks };
}

describe('walkManifests', () => {
  it('walks an index → platform manifests → config and layers, each manifest after what it names', async () => {
    const store = multiArch();
    const nodes = await walkManifests([{ digest: d('f') }], options(gc, store.hooks));
    expect(nodes.map((n) => [n.digest, n.role, n.depth])).toEqual([
      [d('c'), 'blob', 2],
      [d('1'), 'blob', 2],
      [d('2'), 'blob', 2],
      [d('a'), 'platform', 1],
      [d('e'), 'blob', 2],
      [d('3'), 'blob', 2],
      [d('b'), 'platform', 1],
      [d('f'), 'root', 0],
    ]);
    expect(nodes.every((n) => n.root === d('f'))).toBe(true);
    expect(nodes.find((n) => n.digest === d('a'))?.descriptor.platform).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(nodes.find((n) => n.digest === d('f'))?.manifest?.manifests).toHaveLength(2);
    expect(store.reads).toEqual([d('f'), d('a'), d('b')]);
  });

  it('visits a shared layer once with dedupe, once per path without (as ls sums sizes)', async () => {
    const store = multiArch();
    const once = await walkManifests([{ digest: d('f') }], options(gc, store.hooks));
    expect(once.filter((n) => n.digest === d('1'))).toHaveLength(1);
    const perPath = await walkManifests([{ digest: d('f') }], options({ ...gc, maxDepth: 2, dedupe: false }, store.hooks));
    expect(perPath.filter((n) => n.digest === d('1'))).toHaveLength(2);
    expect(perPath.reduce((sum, n) => sum + (n.info?.size ?? 0), 0)).toBe([...store.content.values()].reduce((sum, c) => sum + c.size, 0) + 100);
  });

  it('reads no manifest at or below maxDepth: ls (2) reads the index and its platforms, gc (3) one level more', async () => {
    const store = memoryStore();
    // An index inside an index: the innermost image is at depth 2.
    store.putManifest(d('f'), { schemaVersion: 2, manifests: [{ digest: d('d') }] });
    store.putManifest(d('d'), { schemaVersion: 2, manifests: [{ digest: d('a') }] });
    store.putManifest(d('a'), image(d('c'), [d('1')]));
    store.putBlob(d('c'), 10);
    store.putBlob(d('1'), 100);
    const ls = await walkManifests([{ digest: d('f') }], options({ ...gc, maxDepth: 2, dedupe: false }, store.hooks));
    expect(ls.map((n) => n.digest)).toEqual([d('a'), d('d'), d('f')]);
    expect(store.reads).toEqual([d('f'), d('d')]);
    store.reads.length = 0;
    const deep = await walkManifests([{ digest: d('f') }], options(gc, store.hooks));
    expect(deep.map((n) => n.digest)).toEqual([d('c'), d('1'), d('a'), d('d'), d('f')]);
    expect(store.reads).toEqual([d('f'), d('d'), d('a')]);
  });

  it('gc: reports missing content (reachable all the same) and walks on', async () => {
    const store = multiArch();
    store.content.delete(d('b'));
    store.content.delete(d('2'));
    const nodes = await walkManifests([{ digest: d('f') }, { digest: d('9') }], options(gc, store.hooks));
    const missing = nodes.filter((n) => n.info === undefined).map((n) => n.digest);
    expect(missing).toEqual([d('2'), d('b'), d('9')]);
    expect(new Set(nodes.map((n) => n.digest)).size).toBe(7);
  });

  it('export: skips a platform manifest that was never cached, and names the root of a missing layer', async () => {
    const store = multiArch();
    const exportOptions = { ...gc, missing: 'error', badManifest: 'skip' } as const;
    store.content.delete(d('b'));
    const nodes = await walkManifests([{ digest: d('f') }], options(exportOptions, store.hooks));
    expect(nodes.filter((n) => n.info).map((n) => n.digest)).toEqual([d('c'), d('1'), d('2'), d('a'), d('f')]);
    store.content.delete(d('2'));
    const failure = walkManifests([{ digest: d('f') }], options(exportOptions, store.hooks));
    await expect(failure).rejects.toBeInstanceOf(MissingContentError);
    await expect(failure).rejects.toMatchObject({ code: 'CONTENT_MISSING', digest: d('2'), role: 'blob', root: d('f') });
  });

  it('a missing root is an error when misses are, whether or not platforms are optional', async () => {
    const store = memoryStore();
    await expect(walkManifests([{ digest: d('9') }], options({ ...gc, missing: 'error' }, store.hooks))).rejects.toMatchObject({ role: 'root', digest: d('9') });
  });

  it('a missing platform manifest is an error when platforms are not optional', async () => {
    const store = multiArch();
    store.content.delete(d('b'));
    await expect(walkManifests([{ digest: d('f') }], options({ ...gc, missing: 'error', platformsOptional: false }, store.hooks))).rejects.toMatchObject({
      role: 'platform',
      digest: d('b'),
    });
  });

  it('bad manifests: gc follows nothing from them; import is refused with a typed error naming the manifest', async () => {
    const store = memoryStore();
    store.content.set(d('f'), { manifest: true, size: 3, bytes: Buffer.from('{{{') });
    const skipped = await walkManifests([{ digest: d('f') }], options(gc, store.hooks));
    expect(skipped.map((n) => [n.digest, n.manifest])).toEqual([[d('f'), undefined]]);
    const strict = walkManifests([{ digest: d('f') }], options({ ...gc, missing: 'error', badManifest: 'error' }, store.hooks));
    await expect(strict).rejects.toBeInstanceOf(ManifestError);
    await expect(strict).rejects.toMatchObject({ code: 'BAD_MANIFEST', problem: 'not-json', digest: d('f') });
  });

  it('a bad child digest is dropped when skipping, refused when strict', async () => {
    const store = memoryStore();
    store.putManifest(d('a'), { schemaVersion: 2, config: { digest: d('c') }, layers: [{ digest: 'sha256:short' }] });
    store.putBlob(d('c'), 10);
    const nodes = await walkManifests([{ digest: d('a') }], options(gc, store.hooks));
    expect(nodes.map((n) => n.digest)).toEqual([d('c'), d('a')]);
    await expect(walkManifests([{ digest: d('a') }], options({ ...gc, badManifest: 'error' }, store.hooks))).rejects.toMatchObject({
      problem: 'bad-descriptor',
      message: `manifest ${d('a')}: names a bad digest "sha256:short"`,
    });
  });

  it('follows an artifact manifest\'s blobs only with artifactBlobs (gc yes; import and seed name config and layers)', async () => {
    const store = memoryStore();
    store.putManifest(d('a'), { schemaVersion: 2, config: { digest: d('c') }, layers: [], blobs: [{ digest: d('4') }] });
    store.putBlob(d('c'), 10);
    store.putBlob(d('4'), 40);
    const withBlobs = await walkManifests([{ digest: d('a') }], options(gc, store.hooks));
    expect(withBlobs.map((n) => n.digest)).toEqual([d('c'), d('4'), d('a')]);
    const without = await walkManifests([{ digest: d('a') }], options({ ...gc, artifactBlobs: false }, store.hooks));
    expect(without.map((n) => n.digest)).toEqual([d('c'), d('a')]);
  });

  it('seed: follows only the platforms it selects, and a manifest stat calls a blob is never read', async () => {
    const store = multiArch();
    const nodes = await walkManifests([{ digest: d('f') }], {
      ...gc,
      maxDepth: 2,
      missing: 'error',
      platformsOptional: false,
      badManifest: 'error',
      artifactBlobs: false,
      dedupe: false,
      stat: (node) => Promise.resolve({ manifest: node.role !== 'blob' }),
      read: store.hooks.read,
      selectPlatforms: (children) => children.filter((c) => c.platform?.architecture === 'arm64'),
    });
    expect(nodes.map((n) => n.digest)).toEqual([d('e'), d('1'), d('3'), d('b'), d('f')]);
    expect(nodes.filter((n) => n.role === 'blob').map((n) => n.descriptor.size)).toEqual([10, 100, 100]);
    expect(store.reads).toEqual([d('f'), d('b')]);
  });

  it('import: stat decides by the descriptor\'s media type whether a node is a manifest to read', async () => {
    const store = multiArch();
    const nodes = await walkManifests([{ digest: d('f'), mediaType: OCI_INDEX }], {
      ...gc,
      missing: 'error',
      badManifest: 'error',
      artifactBlobs: false,
      dedupe: false,
      stat: async (node) => ((await store.hooks.stat(node)) ? { manifest: node.descriptor.mediaType === OCI_INDEX || node.descriptor.mediaType === OCI_MANIFEST } : undefined),
      read: store.hooks.read,
    });
    expect(nodes.filter((n) => n.info?.manifest).map((n) => n.digest)).toEqual([d('a'), d('b'), d('f')]);
    expect(nodes.find((n) => n.digest === d('c'))?.descriptor.mediaType).toBe(CONFIG_TYPE);
  });
});
