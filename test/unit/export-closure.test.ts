// What export takes from the store, through the one manifest walk: three levels, a platform manifest that was
// never cached left out, a missing config or layer refused naming the image, and each digest once.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { OpenBlob } from '../../src/cache/blob-store.js';
import type { BlobRecord } from '../../src/index/blob-index.js';
import { OCI_INDEX, OCI_MANIFEST } from '../../src/registry/media-types.js';
import type { Digest } from '../../src/registry/reference.js';
import { closure, type ClosureDeps, type ExportRoot } from '../../src/seed/oci-layout.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;

/** Records and files in memory; `dropFile` leaves a record whose file is gone. */
function memory() {
  const records = new Map<Digest, BlobRecord>();
  const files = new Map<Digest, Buffer>();
  const add = (digest: Digest, content: Buffer | number, manifest: boolean) => {
    const bytes = typeof content === 'number' ? Buffer.alloc(content) : content;
    records.set(digest, { size: bytes.length, mediaType: manifest ? OCI_MANIFEST : 'application/octet-stream', manifest, createdAt: 0, lastAccessAt: 0 });
    files.set(digest, bytes);
  };
  const deps: ClosureDeps = {
    index: { get: (digest) => Promise.resolve(records.get(digest)) },
    store: {
      open: (digest) => {
        const bytes = files.get(digest);
        const opened: OpenBlob | undefined = bytes && { size: bytes.length, read: () => Readable.from([bytes]), close: () => Promise.resolve() };
        return Promise.resolve(opened);
      },
    },
  };
  return { records, files, add, deps };
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

function multiArch() {
  const m = memory();
  m.add(d('c'), 10, false);
  m.add(d('e'), 11, false);
  m.add(d('1'), 100, false);
  m.add(d('2'), 200, false);
  m.add(d('a'), json({ schemaVersion: 2, config: { digest: d('c') }, layers: [{ digest: d('1') }, { digest: d('2') }] }), true);
  m.add(d('b'), json({ schemaVersion: 2, config: { digest: d('e') }, layers: [{ digest: d('1') }] }), true);
  m.add(d('f'), json({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ digest: d('a') }, { digest: d('b') }, { digest: d('9') }] }), true);
  return m;
}

const root = (digest: Digest, ref = 'docker.io/library/multi:1'): ExportRoot => ({ ref, digest, mediaType: OCI_INDEX, size: 1 });

describe('export closure', () => {
  it('lists every stored digest once, each manifest after what it names, leaving out an uncached platform', async () => {
    const m = multiArch();
    const out = await closure(m.deps, [root(d('f')), root(d('a'), 'docker.io/library/single:1')]);
    expect([...out.keys()]).toEqual([d('c'), d('1'), d('2'), d('a'), d('e'), d('b'), d('f')]);
    expect(out.get(d('2'))).toBe(200);
  });

  it('refuses a missing layer naming the image it belongs to', async () => {
    const m = multiArch();
    m.records.delete(d('2'));
    await expect(closure(m.deps, [root(d('f'))])).rejects.toThrow(`docker.io/library/multi:1: ${d('2')} is not cached (seed the image again)`);
  });

  it('refuses a manifest whose record outlived its file', async () => {
    const m = multiArch();
    m.files.delete(d('b'));
    await expect(closure(m.deps, [root(d('f'))])).rejects.toThrow(`docker.io/library/multi:1: ${d('b')} vanished from the store`);
  });

  it('takes a stored manifest that does not parse as naming nothing', async () => {
    const m = memory();
    m.add(d('a'), Buffer.from('{not json'), true);
    expect([...(await closure(m.deps, [root(d('a'))])).keys()]).toEqual([d('a')]);
  });
});
