// What the maintenance commands (ls, gc, pin, unpin, fsck) open: the data directory of a stopped mirror.
// LevelDB takes a lock, so a running mirror's directory is refused with a message saying so.
import { pino, type Logger } from 'pino';
import { DiskBlobStore } from '../cache/blob-store.js';
import type { Config } from '../config/schema.js';
import { BlobIndex } from '../index/blob-index.js';
import { openIndex, type IndexDb } from '../index/db.js';
import { PinIndex } from '../index/pin-index.js';
import { LevelTagIndex } from '../index/tag-index.js';

export interface OpenDataDir {
  db: IndexDb;
  index: BlobIndex;
  tags: LevelTagIndex;
  pins: PinIndex;
  store: DiskBlobStore;
  close(): Promise<void>;
}

/** abstract-level reports a held lock as LEVEL_DATABASE_NOT_OPEN caused by LEVEL_LOCKED. */
export function isLockError(err: unknown): boolean {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | undefined;
  return e?.code === 'LEVEL_LOCKED' || e?.cause?.code === 'LEVEL_LOCKED';
}

export function inUseError(config: Config): Error {
  return new Error(`the index in ${config.dataDir} is in use by a running regmirror: stop it first`);
}

export async function openIndexOf(config: Config): Promise<IndexDb> {
  try {
    return await openIndex(config.dataDir);
  } catch (err) {
    if (isLockError(err)) throw inUseError(config);
    throw new Error(`cannot open the index in ${config.dataDir}: ${(err as Error).message}`);
  }
}

/** The cache of a stopped mirror, quiet, wired by `open` (app.ts: seed, export, import drive it as the server would). */
export async function openCacheOf<T>(config: Config, open: (config: Config, log: Logger) => Promise<T>): Promise<T> {
  return open(config, pino({ level: 'silent' })).catch((err: unknown) => {
    throw isLockError(err) ? inUseError(config) : err;
  });
}

export async function openDataDir(config: Config): Promise<OpenDataDir> {
  const db = await openIndexOf(config);
  return {
    db,
    index: new BlobIndex(db, 10_000),
    tags: new LevelTagIndex(db, 1000),
    pins: new PinIndex(db),
    store: new DiskBlobStore(config.dataDir),
    close: () => db.close(),
  };
}
