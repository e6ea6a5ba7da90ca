// What fsck opens: the index of a stopped mirror. LevelDB takes a lock, so a running mirror's directory is
// refused with a message saying why fsck, unlike the admin commands (cli/admin-client.ts), needs it stopped.
import type { Config } from '../config/schema.js';
import { openIndex, type IndexDb } from '../index/db.js';

/** abstract-level reports a held lock as LEVEL_DATABASE_NOT_OPEN caused by LEVEL_LOCKED. */
export function isLockError(err: unknown): boolean {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | undefined;
  return e?.code === 'LEVEL_LOCKED' || e?.cause?.code === 'LEVEL_LOCKED';
}

/**
 * fsck compares every record with its file and removes the temp files of unfinished downloads: against a
 * running mirror, whose downloads write those files and whose records change as it works, that would report
 * (or, with --repair, "fix") what is merely in progress.
 */
export function inUseError(config: Config): Error {
  return new Error(
    `fsck needs the mirror stopped: the index in ${config.dataDir} is in use by a running regmirror, whose downloads in progress fsck would take for damage (ls, pin, gc, seed, export and import work while it runs)`,
  );
}

export async function openIndexOf(config: Config): Promise<IndexDb> {
  try {
    return await openIndex(config.dataDir);
  } catch (err) {
    if (isLockError(err)) throw inUseError(config);
    throw new Error(`cannot open the index in ${config.dataDir}: ${(err as Error).message}`);
  }
}
