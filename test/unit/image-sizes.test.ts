// ImageSizes: image sizes memoised by manifest digest (the status page sizes only the rows it returns, again on
// every poll), recomputed once blobs were added or removed (the index's record count moved) and the TTL passed.
import { describe, expect, it } from 'vitest';
import { ImageSizes, pageOfImages, SIZE_SORT_MAX, type ImageEntry } from '../../src/admin/images.js';
import type { BlobStore } from '../../src/cache/blob-store.js';
import type { BlobRecord } from '../../src/index/blob-index.js';

function fakeIndex() {
  const index = {
    peeks: 0,
    count: 1,
    size: 100,
    get usage() {
      return { bytes: 0, count: index.count };
    },
    peek(): Promise<BlobRecord | undefined> {
      index.peeks++;
      return Promise.resolve({ size: index.size, mediaType: 'application/octet-stream', manifest: false, createdAt: 0, lastAccessAt: 0 });
    },
  };
  return index;
}
// A digest whose manifest is not readable: walkManifests counts its record (the root's size) and skips it.
const store = { open: () => Promise.resolve(undefined) } as unknown as BlobStore;
const D = `sha256:${'a'.repeat(64)}`;

describe('ImageSizes', () => {
  it('computes a digest once while the record count stays, again when it moved and the TTL passed', async () => {
    let now = 0;
    const index = fakeIndex();
    const sizes = new ImageSizes({ index, store }, () => now, 1000);
    expect(await sizes.of(D)).toBe(100);
    const peeks = index.peeks;
    index.size = 200;
    now = 5000;
    expect(await sizes.of(D)).toBe(100); // nothing added or removed: the memo holds, however old
    expect(index.peeks).toBe(peeks);
    index.count = 2;
    now = 5500;
    expect(await sizes.of(D)).toBe(200); // blobs came or went, and the size is older than the TTL
    index.count = 3;
    index.size = 300;
    now = 5600;
    expect(await sizes.of(D)).toBe(200); // changed again, but computed within the TTL
  });

  it('sorts by size only up to SIZE_SORT_MAX matching rows', async () => {
    const sizes = new ImageSizes({ index: fakeIndex(), store });
    const entry = (i: number): ImageEntry => ({ name: `r${i}:1`, registry: 'docker.io', repository: `r${i}`, tag: '1', digest: D, pulledAt: undefined, pulls: 0, checkedAt: 0, pinned: false });
    const many = Array.from({ length: SIZE_SORT_MAX + 1 }, (_, i) => entry(i));
    await expect(pageOfImages(many, { q: '', sort: 'size', order: 'desc', limit: 10 }, sizes)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    const page = await pageOfImages(many, { q: 'r1', sort: 'size', order: 'desc', limit: 3 }, sizes);
    expect(page).toMatchObject({ total: SIZE_SORT_MAX + 1, matched: 1111, images: [{ name: 'r1000:1', size: 100 }, { name: 'r1001:1' }, { name: 'r1002:1' }] });
  });
});
