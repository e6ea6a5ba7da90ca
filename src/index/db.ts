// The LevelDB index: one database under <dataDir>/index with a sublevel per record kind.
import { Level } from 'level';
import { join } from 'node:path';

export type IndexDb = Level<string, unknown>;

export async function openIndex(dataDir: string): Promise<IndexDb> {
  const db = new Level<string, unknown>(join(dataDir, 'index'), { valueEncoding: 'json' });
  await db.open();
  return db;
}

export function sublevel<V>(db: IndexDb, name: 'blobs' | 'tags' | 'pins' | 'repo-blobs' | 'meta') {
  return db.sublevel<string, V>(name, { valueEncoding: 'json' });
}
