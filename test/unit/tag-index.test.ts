// TagIndex: the contract, run against the LevelDB index and the in-memory one used in unit tests.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe } from 'vitest';
import { openIndex, type IndexDb } from '../../src/index/db.js';
import { LevelTagIndex } from '../../src/index/tag-index.js';
import { tagIndexContract } from '../contract/tag-index.contract.js';
import { MemoryTagIndex } from '../fixtures/memory-tag-index.js';

const opened: Array<{ db: IndexDb; dir: string }> = [];
afterEach(async () => {
  for (const { db, dir } of opened.splice(0)) {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  }
});

describe('LevelTagIndex', () => {
  // A hot-record cache of 1 entry, so reads go to LevelDB and not only to memory.
  tagIndexContract(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regmirror-tags-'));
    const db = await openIndex(dir);
    opened.push({ db, dir });
    return new LevelTagIndex(db, 1);
  });
});

describe('MemoryTagIndex', () => {
  tagIndexContract(() => Promise.resolve(new MemoryTagIndex()));
});
