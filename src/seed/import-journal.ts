// What an import is adding, on disk while it runs, so that an import killed half-way leaves no trace: the next
// open of the data directory removes the files it added that never got a record (issue 14, finding 9). A file is
// journalled before it is written, so no file of an import can be in the store without being listed.
import { appendFile, readFile, rm, writeFile } from 'node:fs/promises';
import type { BlobIndex } from '../index/blob-index.js';
import type { BlobStore } from '../cache/blob-store.js';
import { isDigest } from '../registry/reference.js';

export class ImportJournal {
  constructor(private readonly path: string) {}

  begin(): Promise<void> {
    return writeFile(this.path, '');
  }

  add(digest: string): Promise<void> {
    return appendFile(this.path, `${digest}\n`);
  }

  /** The import ended, committed or rolled back: nothing is left to undo. */
  end(): Promise<void> {
    return rm(this.path, { force: true });
  }
}

/** After a crash: removes the files an interrupted import added that have no index record; how many. */
export async function recoverInterruptedImport(
  path: string,
  store: Pick<BlobStore, 'delete'>,
  index: Pick<BlobIndex, 'get'>,
): Promise<number> {
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (text === undefined) return 0;
  let removed = 0;
  for (const line of text.split('\n')) {
    if (!isDigest(line) || (await index.get(line))) continue;
    await store.delete(line);
    removed++;
  }
  await rm(path, { force: true });
  return removed;
}
