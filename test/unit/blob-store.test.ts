// DiskBlobStore: the BlobStore contract, plus what only a disk store has (layout, temp files, crash leftovers).
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskBlobStore } from '../../src/cache/blob-store.js';
import { blobStoreContract, content } from '../contract/blob-store.contract.js';

const dirs: string[] = [];
async function diskStore(): Promise<DiskBlobStore> {
  const dir = await mkdtemp(join(tmpdir(), 'regmirror-store-'));
  dirs.push(dir);
  const store = new DiskBlobStore(dir);
  await store.init();
  return store;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe('DiskBlobStore', () => {
  blobStoreContract(diskStore);

  it('names a blob by its digest under blobs/<algorithm>/<first two hex>/', async () => {
    const store = await diskStore();
    const { bytes, digest } = content(100);
    const writer = await store.createWriter(digest, bytes.length);
    await pipeline(Readable.from([bytes]), writer);
    await writer.commit();
    const hex = digest.slice(7);
    expect(store.pathOf(digest)).toBe(join(dirs[0] as string, 'blobs', 'sha256', hex.slice(0, 2), hex));
    expect(await readdir(join(dirs[0] as string, 'tmp'))).toEqual([]);
  });

  it('writes in progress live in tmp/ and are removed at the next start', async () => {
    const store = await diskStore();
    const { digest } = content(100);
    const writer = await store.createWriter(digest, 100);
    expect(writer.spoolPath.startsWith(join(dirs[0] as string, 'tmp'))).toBe(true);
    await writeFile(join(dirs[0] as string, 'tmp', 'leftover'), 'x');
    const restarted = new DiskBlobStore(dirs[0] as string);
    expect((await restarted.init()).removedTempFiles).toBe(2);
    expect(await readdir(join(dirs[0] as string, 'tmp'))).toEqual([]);
    await writer.abort();
  });
});

describe('DiskBlobStore commits', () => {
  it('commits 8 writers finishing at once, each verified and in place, with their fsyncs taking turns', async () => {
    const store = await diskStore();
    const blobs = Array.from({ length: 8 }, (_, i) => content(64 * 1024 + i));
    const writers = await Promise.all(blobs.map(({ bytes, digest }) => store.createWriter(digest, bytes.length)));
    await Promise.all(writers.map((w, i) => pipeline(Readable.from([(blobs[i] as { bytes: Buffer }).bytes]), w)));
    const infos = await Promise.all(writers.map((w) => w.commit()));
    expect(infos.map((i) => i.size)).toEqual(blobs.map((b) => b.bytes.length));
    for (const { digest, bytes } of blobs) expect((await store.stat(digest))?.size).toBe(bytes.length);
    expect(await readdir(join(dirs[0] as string, 'tmp'))).toEqual([]);
  });
});

describe('DiskBlobStore.init', () => {
  it('creates a nested data directory, and fails fast (no spin) where no directory can be made', async () => {
    const base = await mkdtemp(join(tmpdir(), 'regmirror-store-'));
    dirs.push(base);
    await new DiskBlobStore(join(base, 'a', 'b', 'c')).init();
    expect((await readdir(join(base, 'a', 'b', 'c'))).sort()).toEqual(['blobs', 'tmp']);
    await expect(new DiskBlobStore('/proc/regmirror-cannot-exist').init()).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
