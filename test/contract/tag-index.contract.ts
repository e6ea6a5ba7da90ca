// The TagIndex contract: every implementation must pass it (see tag-index.test.ts: LevelDB and in-memory).
import { expect, it } from 'vitest';
import type { TagEntry, TagIndex, TagKey } from '../../src/index/tag-index.js';
import type { Digest } from '../../src/registry/reference.js';

const digest = (n: number) => `sha256:${String(n).padStart(64, '0')}` as Digest;
const key = (repo: string, tag: string, acceptKey = 'docker'): TagKey => ({ upstream: 'docker.io', repo, tag, acceptKey });
const entry = (k: TagKey, n: number, checkedAt = 1000): TagEntry => ({
  ...k,
  digest: digest(n),
  mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
  size: 500 + n,
  checkedAt,
});

export function tagIndexContract(create: () => Promise<TagIndex>): void {
  it('answers undefined for a tag it never recorded, and the record once put', async () => {
    const tags = await create();
    expect(await tags.get(key('library/alpine', '3.19'))).toBeUndefined();
    await tags.put(entry(key('library/alpine', '3.19'), 1));
    expect(await tags.get(key('library/alpine', '3.19'))).toEqual(entry(key('library/alpine', '3.19'), 1));
    // Another accept class, upstream or repository is another record.
    expect(await tags.get(key('library/alpine', '3.19', 'oci'))).toBeUndefined();
    expect(await tags.get({ ...key('library/alpine', '3.19'), upstream: 'ghcr.io' })).toBeUndefined();
    expect(await tags.get(key('library/alpine-slim', '3.19'))).toBeUndefined();
  });

  it('replaces a record on put, adding the pulls counted since the last flush', async () => {
    const tags = await create();
    const k = key('library/nginx', '1.25');
    await tags.put(entry(k, 1));
    tags.touch(k, 5000);
    tags.touch(k, 6000);
    await tags.flush();
    const stored = await tags.get(k);
    expect(stored).toMatchObject({ hits: 2, pulledAt: 6000 });
    // The caller carries what it read; pulls not yet flushed are added to it.
    tags.touch(k, 8000);
    await tags.put({ ...(stored as TagEntry), digest: digest(2), checkedAt: 9000 });
    expect(await tags.get(k)).toEqual({ ...entry(k, 1, 9000), digest: digest(2), hits: 3, pulledAt: 8000 });
  });

  it('lists records with the pulls counted since the last flush, before and after the flush alike', async () => {
    const tags = await create();
    const k = key('library/redis', '7');
    await tags.put(entry(k, 3));
    tags.touch(k, 100);
    tags.touch(k, 200);
    const listed = async () => {
      const all: TagEntry[] = [];
      for await (const e of tags.entries()) all.push(e);
      return all;
    };
    expect(await listed()).toMatchObject([{ repo: 'library/redis', tag: '7', hits: 2, pulledAt: 200 }]);
    await tags.flush();
    expect(await listed()).toMatchObject([{ repo: 'library/redis', tag: '7', hits: 2, pulledAt: 200 }]);
  });

  it('counts pulls in memory and writes them on flush; a pull of an unrecorded tag is dropped', async () => {
    const tags = await create();
    const k = key('library/redis', '7');
    await tags.put(entry(k, 3));
    for (let i = 0; i < 5; i++) tags.touch(k, 100 + i);
    tags.touch(key('library/redis', 'never'), 100);
    await tags.flush();
    expect(await tags.get(k)).toMatchObject({ hits: 5, pulledAt: 104 });
    expect(await tags.get(key('library/redis', 'never'))).toBeUndefined();
  });

  it('lists the records of one tag across accept classes, and every record', async () => {
    const tags = await create();
    await tags.put(entry(key('a/b', 'v1', 'docker'), 1));
    await tags.put(entry(key('a/b', 'v1', 'oci'), 2));
    await tags.put(entry(key('a/b', 'v10'), 3));
    await tags.put(entry(key('a/b/c', 'v1'), 4));
    const one = await tags.entriesFor('docker.io', 'a/b', 'v1');
    expect(one.map((e) => e.acceptKey).sort()).toEqual(['docker', 'oci']);
    const all: TagEntry[] = [];
    for await (const e of tags.entries()) all.push(e);
    expect(all).toHaveLength(4);
  });

  it('lists the distinct tags of a repository in lexical order, not those of a longer name', async () => {
    const tags = await create();
    for (const t of ['b', 'a', 'c']) await tags.put(entry(key('x/app', t), 1));
    await tags.put(entry(key('x/app', 'a', 'oci'), 1));
    await tags.put(entry(key('x/app-two', 'z'), 1));
    await tags.put(entry(key('x/app/sub', 'y'), 1));
    expect(await tags.tagsOf('docker.io', 'x/app')).toEqual(['a', 'b', 'c']);
    expect(await tags.tagsOf('docker.io', 'x/none')).toEqual([]);
  });

  it('deletes every accept class of one tag and nothing else', async () => {
    const tags = await create();
    await tags.put(entry(key('x/app', 'v1', 'docker'), 1));
    await tags.put(entry(key('x/app', 'v1', 'oci'), 1));
    await tags.put(entry(key('x/app', 'v11'), 2));
    tags.touch(key('x/app', 'v1'), 10);
    await tags.deleteTag('docker.io', 'x/app', 'v1');
    await tags.flush();
    expect(await tags.entriesFor('docker.io', 'x/app', 'v1')).toEqual([]);
    expect(await tags.get(key('x/app', 'v1'))).toBeUndefined();
    expect(await tags.tagsOf('docker.io', 'x/app')).toEqual(['v11']);
  });
}
