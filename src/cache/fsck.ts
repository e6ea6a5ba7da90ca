// Checking the store against its index (`regmirror fsck`), and rebuilding the index from the files when it is
// lost or corrupt. The invariant: every index record names a complete file of the recorded size whose content
// hashes to its name. Files without a record are not a fault (a crash between rename and record leaves one,
// and the next download of that digest adopts it); temp files are leftovers of interrupted downloads.
// Only a proven mismatch (size, or content against its name) removes a file: a read that fails (EIO, EACCES)
// says nothing about the content, so the file is reported and kept for its owner to look at.
import { createReadStream } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobIndex, BlobRecord } from '../index/blob-index.js';
import { sniffMediaType, tryParseManifest } from '../registry/manifest.js';
import { isDigest, type Digest } from '../registry/reference.js';
import { readWhole, type DiskBlobStore } from './blob-store.js';
import { DigestMismatchError, verifyStream } from './digest-verify.js';

export interface StoredFile {
  digest: Digest;
  size: number;
  path: string;
}

export interface FsckProblem {
  digest?: Digest;
  path?: string;
  problem: 'missing file' | 'size mismatch' | 'digest mismatch' | 'unreadable' | 'stray file' | 'usage mismatch';
  detail: string;
}

export interface FsckReport {
  files: number;
  bytes: number;
  records: number;
  /** Files with no record: adopted by --rebuild-index or by the next download of their digest. */
  unindexed: number;
  tempFilesRemoved: number;
  problems: FsckProblem[];
  /** Records added (rebuild), or records and files removed (repair). */
  repaired: number;
}

export interface FsckHooks {
  /** Called before hashing starts, with the total bytes, and after each file with its bytes. */
  onHashStart?(totalBytes: number): void;
  onHashed?(bytes: number): void;
}

/** Largest file looked at as a possible manifest when rebuilding (manifests are kilobytes). */
const MANIFEST_SNIFF_BYTES = 4 * 2 ** 20;

/** Every file under blobs/, and the names that cannot be content (wrong place, not a digest). */
export async function listStoredFiles(dataDir: string): Promise<{ files: StoredFile[]; strays: string[] }> {
  const files: StoredFile[] = [];
  const strays: string[] = [];
  const root = join(dataDir, 'blobs');
  for (const algorithm of await readdir(root).catch(() => [] as string[])) {
    const algorithmDir = join(root, algorithm);
    for (const prefix of await readdir(algorithmDir).catch(() => [] as string[])) {
      const prefixDir = join(algorithmDir, prefix);
      for (const name of await readdir(prefixDir).catch(() => [] as string[])) {
        const path = join(prefixDir, name);
        const digest = `${algorithm}:${name}`;
        const info = await stat(path);
        if (!info.isFile() || !isDigest(digest) || !name.startsWith(prefix) || prefix.length !== 2) strays.push(path);
        else files.push({ digest, size: info.size, path });
      }
    }
  }
  return { files, strays };
}

/** A file that could not be read: its content is unknown, so it is neither removed nor indexed. */
function unreadable(file: StoredFile, err: unknown, kept: string): FsckProblem {
  const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return { digest: file.digest, path: file.path, problem: 'unreadable', detail: `cannot read: ${reason}; ${kept}` };
}

/** Hashes a file: undefined when it matches its name, else a mismatch (proven) or an unreadable file. */
async function checkContent(file: StoredFile, kept: string): Promise<FsckProblem | undefined> {
  try {
    await verifyStream(createReadStream(file.path, { highWaterMark: 1024 * 1024 }), file.digest, file.size);
    return undefined;
  } catch (err) {
    if (!(err instanceof DigestMismatchError)) return unreadable(file, err, kept);
    return { digest: file.digest, path: file.path, problem: 'digest mismatch', detail: 'content does not hash to its name' };
  }
}

async function removeTempFiles(dataDir: string): Promise<number> {
  const tmp = join(dataDir, 'tmp');
  const names = await readdir(tmp).catch(() => [] as string[]);
  await Promise.all(names.map((name) => rm(join(tmp, name), { force: true, recursive: true })));
  return names.length;
}

/**
 * Checks every record against its file (and with `verifyDigests`, every file against its name). With `repair`,
 * records of missing or damaged files are removed, with the damaged files, and unindexed files are adopted.
 */
export async function checkStore(
  dataDir: string,
  index: BlobIndex,
  store: DiskBlobStore,
  options: { verifyDigests: boolean; repair: boolean },
  hooks: FsckHooks = {},
): Promise<FsckReport> {
  const tempFilesRemoved = await removeTempFiles(dataDir);
  const { files, strays } = await listStoredFiles(dataDir);
  const byDigest = new Map(files.map((f) => [f.digest, f]));
  const problems: FsckProblem[] = strays.map((path) => ({ path, problem: 'stray file', detail: 'not named by a digest in its place' }));
  const recorded = new Set<Digest>();
  let repaired = 0;
  const broken = new Set<Digest>();
  /** Left alone: record and file stay until a read succeeds (fix the disk or permissions, run fsck again). */
  const unreadables = new Set<Digest>();
  const counted = { bytes: 0, count: 0 };
  for await (const [digest, record] of index.entries()) {
    recorded.add(digest);
    counted.bytes += record.size;
    counted.count++;
    const file = byDigest.get(digest);
    if (!file) {
      problems.push({ digest, problem: 'missing file', detail: 'the index names it but it is not on disk' });
      broken.add(digest);
    } else if (file.size !== record.size) {
      problems.push({ digest, problem: 'size mismatch', detail: `index says ${record.size} bytes, file has ${file.size}` });
      broken.add(digest);
    }
  }
  if (options.verifyDigests) {
    hooks.onHashStart?.(files.reduce((sum, f) => sum + f.size, 0));
    for (const file of files) {
      const problem = await checkContent(file, 'kept');
      if (problem) {
        problems.push(problem);
        (problem.problem === 'unreadable' ? unreadables : broken).add(file.digest);
      }
      hooks.onHashed?.(file.size);
    }
  }
  const unindexed = files.filter((f) => !recorded.has(f.digest) && !broken.has(f.digest) && !unreadables.has(f.digest));
  // The stored totals (bytes, count: what the quota reads) must be the records' sum. None stored is no fault: an
  // index from before they were kept; the next open of the cache, or --repair, writes them.
  const stored = await index.storedUsage();
  if (stored && (stored.bytes !== counted.bytes || stored.count !== counted.count)) {
    problems.push({ problem: 'usage mismatch', detail: `index totals say ${stored.bytes} bytes in ${stored.count} records, the records sum to ${counted.bytes} bytes in ${counted.count}` });
  }
  if (options.repair) {
    // Repairs below adjust the totals from this count; an unchanged count is written again, harmlessly.
    await index.setUsage(counted);
    for (const digest of broken) {
      await index.delete(digest);
      await store.delete(digest);
      repaired++;
    }
    for (const path of strays) await rm(path, { force: true });
    for (const file of unindexed) {
      const record = await readableRecord(store, file, problems);
      if (!record) continue;
      await index.put(file.digest, record);
      repaired++;
    }
  }
  return {
    files: files.length,
    bytes: files.reduce((sum, f) => sum + f.size, 0),
    records: recorded.size,
    unindexed: options.repair ? 0 : unindexed.length,
    tempFilesRemoved,
    problems,
    repaired,
  };
}

/**
 * A fresh index from the files on disk, into `index` (empty: the caller removed the old database). Files that do
 * not hash to their name are removed with `verifyDigests`; without it they are trusted (they were verified when
 * written). Tags are not on disk: each is asked upstream again with a HEAD, and its content is found locally.
 */
export async function rebuildIndex(
  dataDir: string,
  index: BlobIndex,
  store: DiskBlobStore,
  options: { verifyDigests: boolean },
  hooks: FsckHooks = {},
): Promise<FsckReport> {
  const tempFilesRemoved = await removeTempFiles(dataDir);
  const { files, strays } = await listStoredFiles(dataDir);
  const problems: FsckProblem[] = strays.map((path) => ({ path, problem: 'stray file', detail: 'not named by a digest in its place' }));
  hooks.onHashStart?.(files.reduce((sum, f) => sum + f.size, 0));
  let repaired = 0;
  const adopt = async (file: StoredFile): Promise<boolean> => {
    const problem = options.verifyDigests ? await checkContent(file, 'kept, not indexed') : undefined;
    if (problem?.problem === 'digest mismatch') {
      problems.push({ ...problem, detail: `${problem.detail}; removed` });
      await store.delete(file.digest);
      return false;
    }
    if (problem) problems.push(problem);
    const record = problem ? undefined : await readableRecord(store, file, problems);
    if (record) await index.put(file.digest, record);
    return record !== undefined;
  };
  for (const file of files) {
    if (await adopt(file)) repaired++;
    hooks.onHashed?.(file.size);
  }
  return { files: files.length, bytes: files.reduce((s, f) => s + f.size, 0), records: repaired, unindexed: 0, tempFilesRemoved, problems, repaired };
}

/** recordFor, or undefined with an 'unreadable' problem: a small file is read again to tell a manifest, and may fail. */
async function readableRecord(store: DiskBlobStore, file: StoredFile, problems: FsckProblem[]): Promise<BlobRecord | undefined> {
  try {
    return await recordFor(store, file);
  } catch (err) {
    problems.push(unreadable(file, err, 'kept, not indexed'));
    return undefined;
  }
}

/** A record for a file found on disk: a manifest when it parses as one (then with its media type). */
async function recordFor(store: DiskBlobStore, file: StoredFile): Promise<BlobRecord> {
  const now = Date.now();
  const base = { size: file.size, createdAt: now, lastAccessAt: now };
  const sniffed = file.size <= MANIFEST_SNIFF_BYTES ? await sniffManifest(store, file.digest) : undefined;
  return sniffed ? { ...base, mediaType: sniffed, manifest: true } : { ...base, mediaType: 'application/octet-stream', manifest: false };
}

/** The manifest media type of a stored file, if it is one. A read error throws: unreadable is not "not a manifest". */
async function sniffManifest(store: DiskBlobStore, digest: Digest): Promise<string | undefined> {
  const opened = await store.open(digest);
  if (!opened) return undefined;
  const manifest = tryParseManifest(await readWhole(opened));
  return manifest && sniffMediaType(manifest);
}
