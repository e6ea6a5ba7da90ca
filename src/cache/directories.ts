// Directories of the store: created one level at a time, and made durable after a rename into them.
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';

/** fsync of the directory makes the rename itself durable across a power loss. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * mkdir -p, one level at a time. Node's own recursive mkdir spins forever where a parent cannot hold
 * directories (seen under /proc); this fails with that level's error instead.
 */
export async function ensureDirectory(dir: string, depth = 0): Promise<void> {
  try {
    await mkdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir || depth > 64) throw err;
    await ensureDirectory(parent, depth + 1);
    await mkdir(dir).catch((again: NodeJS.ErrnoException) => {
      if (again.code !== 'EEXIST') throw again;
    });
  }
}
