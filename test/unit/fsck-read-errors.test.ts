// `regmirror fsck` on a disk that fails to read: a file whose read fails (EIO) proves nothing about its content,
// so --repair and --rebuild-index report it and keep it; only a proven digest mismatch removes a file.
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskBlobStore } from '../../src/cache/blob-store.js';
import type { CommandContext } from '../../src/cli/command.js';
import { fsck } from '../../src/cli/fsck.js';
import { BlobIndex } from '../../src/index/blob-index.js';
import { openIndex } from '../../src/index/db.js';
import { parseDigest, type Digest } from '../../src/registry/reference.js';

const sha256 = (bytes: Buffer): Digest => parseDigest(`sha256:${createHash('sha256').update(bytes).digest('hex')}`);

const dirs: string[] = [];
afterEach(async () => {
  process.exitCode = undefined; // fsck sets 1 when it finds problems, as it should; not this worker's status
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

interface Fixture {
  dataDir: string;
  store: DiskBlobStore;
  good: Digest;
  corrupt: Digest;
  unreadable: Digest;
}

/**
 * A store with a good file, a file whose content does not hash to its name, and one whose every read fails
 * with EIO: a symlink to /proc/self/mem, which stats as an empty regular file and whose read at offset 0 fails
 * in the kernel (tests run as root, so permission bits cannot make a file unreadable). With `indexed`, every
 * file has a record of its size on disk.
 */
async function brokenStore(indexed: boolean): Promise<Fixture> {
  const dataDir = await mkdtemp(join(tmpdir(), 'regmirror-fsck-'));
  dirs.push(dataDir);
  const store = new DiskBlobStore(dataDir);
  await store.init();
  const place = async (digest: Digest, write: (path: string) => Promise<void>) => {
    await mkdir(dirname(store.pathOf(digest)), { recursive: true });
    await write(store.pathOf(digest));
  };
  const goodBytes = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}');
  const good = sha256(goodBytes);
  await place(good, (p) => writeFile(p, goodBytes));
  const corrupt = sha256(Buffer.from('what was downloaded'));
  const corruptBytes = Buffer.from('what is on the disk!');
  await place(corrupt, (p) => writeFile(p, corruptBytes));
  const unreadable = sha256(Buffer.from('a blob on a failing sector'));
  await place(unreadable, (p) => symlink('/proc/self/mem', p));
  if (indexed) {
    const db = await openIndex(dataDir);
    const index = new BlobIndex(db, 10);
    const record = (size: number) => ({ size, mediaType: 'application/octet-stream', manifest: false, createdAt: 1, lastAccessAt: 1 });
    await index.put(good, record(goodBytes.length));
    await index.put(corrupt, record(corruptBytes.length));
    await index.put(unreadable, record(0));
    await db.close();
  }
  return { dataDir, store, good, corrupt, unreadable };
}

async function run(args: string[], dataDir: string): Promise<string> {
  let text = '';
  const ctx: CommandContext = { args, configFile: undefined, env: { REGMIRROR_DATA: dataDir }, out: (chunk) => (text += chunk) };
  await fsck(ctx);
  return text;
}

async function records(dataDir: string): Promise<Set<string>> {
  const db = await openIndex(dataDir);
  try {
    const found = new Set<string>();
    for await (const [digest] of new BlobIndex(db, 10).entries()) found.add(digest);
    return found;
  } finally {
    await db.close();
  }
}

const exists = (path: string) => lstat(path).then(() => true, () => false);

describe('fsck when a file cannot be read', () => {
  it('--verify-digests --repair reports an unreadable file and keeps it and its record; a proven mismatch is removed', async () => {
    const f = await brokenStore(true);
    const out = await run(['--verify-digests', '--repair'], f.dataDir);
    expect(out).toContain(`unreadable: ${f.unreadable} (cannot read: EIO`);
    expect(out).toContain(`digest mismatch: ${f.corrupt}`);
    expect(out).not.toContain(`digest mismatch: ${f.unreadable}`);
    expect(await exists(f.store.pathOf(f.unreadable))).toBe(true);
    expect(await exists(f.store.pathOf(f.corrupt))).toBe(false);
    expect(await exists(f.store.pathOf(f.good))).toBe(true);
    expect(await records(f.dataDir)).toEqual(new Set([f.good, f.unreadable]));
    expect(process.exitCode).toBe(1);
  });

  it('--rebuild-index --verify-digests reports an unreadable file, keeps it, and does not index it', async () => {
    const f = await brokenStore(false);
    const out = await run(['--rebuild-index', '--verify-digests'], f.dataDir);
    expect(out).toContain(`unreadable: ${f.unreadable} (cannot read: EIO`);
    expect(out).toContain(`digest mismatch: ${f.corrupt}`);
    expect(await exists(f.store.pathOf(f.unreadable))).toBe(true);
    expect(await exists(f.store.pathOf(f.corrupt))).toBe(false);
    expect(await records(f.dataDir)).toEqual(new Set([f.good]));
  });

  it('--rebuild-index without --verify-digests does not index a small file it cannot read', async () => {
    const f = await brokenStore(false);
    const out = await run(['--rebuild-index'], f.dataDir);
    expect(out).toContain(`unreadable: ${f.unreadable} (cannot read: EIO`);
    expect(await exists(f.store.pathOf(f.unreadable))).toBe(true);
    // Not hashed, so trusted as written: the corrupt file is indexed, as documented for this mode.
    expect(await records(f.dataDir)).toEqual(new Set([f.good, f.corrupt]));
  });
});
