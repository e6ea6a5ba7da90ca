// `regmirror fsck` and the store's totals (issue 16): the index keeps bytes and count as a record of their own,
// written with every put and delete; fsck checks them against the records' sum and --repair rewrites them.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskBlobStore } from '../../src/cache/blob-store.js';
import type { CommandContext } from '../../src/cli/command.js';
import { fsck } from '../../src/cli/fsck.js';
import { BlobIndex, USAGE_KEY } from '../../src/index/blob-index.js';
import { openIndex } from '../../src/index/db.js';
import { parseDigest } from '../../src/registry/reference.js';

const dirs: string[] = [];
afterEach(async () => {
  process.exitCode = undefined; // fsck sets 1 when it finds problems, as it should; not this worker's status
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function run(args: string[], dataDir: string): Promise<string> {
  let text = '';
  const ctx: CommandContext = { args, configFile: undefined, env: { REGMIRROR_DATA: dataDir }, out: (chunk) => (text += chunk) };
  await fsck(ctx);
  return text;
}

/** Two stored, indexed files; then `tamper` writes whatever it likes as the stored totals (null: removes them). */
async function storeWithTotals(tamper?: unknown): Promise<string> {
  const dataDir = await mkdtemp(join(tmpdir(), 'regmirror-fsck-usage-'));
  dirs.push(dataDir);
  const store = new DiskBlobStore(dataDir);
  await store.init();
  const db = await openIndex(dataDir);
  const index = new BlobIndex(db, 10);
  await index.loadUsage();
  for (const text of ['first blob', 'second, longer blob']) {
    const bytes = Buffer.from(text);
    const digest = parseDigest(`sha256:${createHash('sha256').update(bytes).digest('hex')}`);
    await mkdir(dirname(store.pathOf(digest)), { recursive: true });
    await writeFile(store.pathOf(digest), bytes);
    await index.put(digest, { size: bytes.length, mediaType: 'application/octet-stream', manifest: false, createdAt: 1, lastAccessAt: 1 });
  }
  const meta = db.sublevel<string, unknown>('meta', { valueEncoding: 'json' });
  if (tamper === null) await meta.del(USAGE_KEY);
  else if (tamper !== undefined) await meta.put(USAGE_KEY, tamper);
  await db.close();
  return dataDir;
}

async function storedUsage(dataDir: string) {
  const db = await openIndex(dataDir);
  try {
    return await new BlobIndex(db, 10).storedUsage();
  } finally {
    await db.close();
  }
}

describe('fsck and the index totals', () => {
  it('finds nothing wrong when the totals match the records', async () => {
    const dataDir = await storeWithTotals();
    expect(await run([], dataDir)).toContain('no problems found');
    expect(await storedUsage(dataDir)).toEqual({ bytes: 29, count: 2 });
  });

  it('reports totals that differ from the records, and --repair writes the sum', async () => {
    const dataDir = await storeWithTotals({ bytes: 5, count: 9 });
    const report = await run([], dataDir);
    expect(report).toContain('usage mismatch');
    expect(report).toContain('the records sum to 29 bytes in 2');
    expect(process.exitCode).toBe(1);
    await run(['--repair'], dataDir);
    expect(await storedUsage(dataDir)).toEqual({ bytes: 29, count: 2 });
    process.exitCode = undefined;
    expect(await run([], dataDir)).toContain('no problems found');
  });

  it('does not count an index from before the totals were kept as a fault; --repair writes them', async () => {
    const dataDir = await storeWithTotals(null);
    expect(await run([], dataDir)).toContain('no problems found');
    await run(['--repair'], dataDir);
    expect(await storedUsage(dataDir)).toEqual({ bytes: 29, count: 2 });
  });
});
