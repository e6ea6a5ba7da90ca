// Content-addressed blob files on local disk. Bytes reach their final name only by rename after verification,
// so a file under blobs/ is always complete and correct; anything under tmp/ is disposable.
//
//   <dataDir>/
//     blobs/
//       sha256/
//         ab/
//           ab12…(64 hex)      verified blob or manifest, named by its digest
//       sha512/…
//     tmp/
//       <hex>.<random>         download in progress; removed on abort and at every start
import { randomBytes, type Hash } from 'node:crypto';
import { type FileHandle, open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { ByteRange } from '../registry/byte-range.js';
import { digestAlgorithm, digestHex, type Digest } from '../registry/reference.js';
import { DiskBlobWriter } from './blob-writer.js';
import { ensureDirectory } from './directories.js';
import { Lane } from './lane.js';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

export interface BlobWriterOptions {
  /** Called after each chunk is on disk (readable by others), with the total written so far. */
  onProgress?: (bytesWritten: number) => void;
  /**
   * Called by commit() once size and digest check out, before the fsync and rename: readers may release
   * the last byte then, since durability is the cache's concern, not the client's (an fsync can take
   * longer than the whole download on a busy disk).
   */
  onVerified?: (size: number) => void;
}

export interface BlobWriter extends Writable {
  /** The file being written, so that readers can follow a download while it grows. */
  readonly spoolPath: string;
  readonly bytesWritten: number;
  /**
   * The hash state over the bytes on disk so far (a copy), for a reader that must go on from elsewhere when
   * the write fails (a full disk); undefined once commit() has finished the hash.
   */
  hashedPrefix(): { length: number; hash: Hash } | undefined;
  /** After the stream finished: verify size and digest, fsync, rename into place. Throws DigestMismatchError. */
  commit(): Promise<BlobInfo>;
  /** Idempotent, safe in finally: stops writing and removes the temp file. */
  abort(): Promise<void>;
}

/** A stored blob, opened: its size is known and it cannot vanish while read. Read once, or close. */
export interface OpenBlob {
  readonly size: number;
  read(range?: ByteRange): Readable;
  /**
   * Positional read into the caller's buffer (the HTTP layer reuses its buffers, see http/send-file.ts).
   * Optional: a store without it is read through `read`. Resolves 0 at the end of the blob.
   */
  readonly readAt?: (buffer: Buffer, length: number, position: number) => Promise<number>;
  close(): Promise<void>;
}

/**
 * The whole of a small stored blob (a manifest) in memory, then closed. Positional reads into a buffer of its size
 * where the store has them: a read stream allocates a READ_CHUNK (256 KiB) buffer per read whatever the file's
 * size, which for GC's and `ls`'s 100,000 manifest reads (issue 16) was 25 GB of allocation and 600 MB of RSS.
 */
export async function readWhole(blob: OpenBlob): Promise<Buffer> {
  // An empty file is read as a stream: it still reads once, so a file that stats empty but fails (EIO) says so.
  if (blob.readAt && blob.size > 0) {
    try {
      const buffer = Buffer.allocUnsafe(blob.size);
      let filled = 0;
      while (filled < blob.size) {
        const n = await blob.readAt(buffer.subarray(filled), blob.size - filled, filled);
        if (n === 0) break;
        filled += n;
      }
      return buffer.subarray(0, filled);
    } finally {
      await blob.close();
    }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of blob.read() as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** A stored file's bytes (small ones: manifests), or undefined when it is not stored. The graph walks' `read`. */
export async function readStored(store: Pick<BlobStore, 'open'>, digest: Digest): Promise<Buffer | undefined> {
  const opened = await store.open(digest);
  return opened && readWhole(opened);
}

export interface BlobStore {
  stat(digest: Digest): Promise<BlobInfo | undefined>;
  /** Undefined when the blob is not stored. Async so that a missing file is known before any header is sent. */
  open(digest: Digest): Promise<OpenBlob | undefined>;
  /** Resolves once the temp file exists, so readers may open `spoolPath` at once. */
  createWriter(digest: Digest, size: number | undefined, options?: BlobWriterOptions): Promise<BlobWriter>;
  delete(digest: Digest): Promise<void>;
}

/** Reads of cached blobs go in chunks of this size: fewer syscalls than fs's 64 KiB default. */
const READ_CHUNK = 256 * 1024;

export class DiskBlobStore implements BlobStore {
  private readonly blobsDir: string;
  private readonly tmpDir: string;
  /** Every writer's fsyncs take turns here (see lane.ts). */
  private readonly syncs = new Lane();

  constructor(dataDir: string) {
    this.blobsDir = join(dataDir, 'blobs');
    this.tmpDir = join(dataDir, 'tmp');
  }

  /** Creates the tree and removes leftovers of downloads that a crash or kill interrupted. */
  async init(): Promise<{ removedTempFiles: number }> {
    await ensureDirectory(this.blobsDir);
    await ensureDirectory(this.tmpDir);
    const leftovers = await readdir(this.tmpDir);
    await Promise.all(leftovers.map((name) => rm(join(this.tmpDir, name), { force: true, recursive: true })));
    return { removedTempFiles: leftovers.length };
  }

  pathOf(digest: Digest): string {
    const hex = digestHex(digest);
    return join(this.blobsDir, digestAlgorithm(digest), hex.slice(0, 2), hex);
  }

  async stat(digest: Digest): Promise<BlobInfo | undefined> {
    try {
      const info = await stat(this.pathOf(digest));
      return { digest, size: info.size };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async open(digest: Digest): Promise<OpenBlob | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(this.pathOf(digest), 'r');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const { size } = await handle.stat();
    return {
      size,
      read: (range) =>
        handle.createReadStream({
          start: range?.start ?? 0,
          ...(range ? { end: range.end } : {}),
          highWaterMark: READ_CHUNK,
          autoClose: true,
        }),
      readAt: async (buffer, length, position) => (await handle.read(buffer, 0, length, position)).bytesRead,
      close: () => handle.close(),
    };
  }

  async createWriter(digest: Digest, size: number | undefined, options: BlobWriterOptions = {}): Promise<BlobWriter> {
    const spoolPath = join(this.tmpDir, `${digestHex(digest).slice(0, 16)}.${randomBytes(6).toString('hex')}`);
    const handle = await open(spoolPath, 'wx');
    return new DiskBlobWriter(digest, size, handle, spoolPath, this.pathOf(digest), options, this.syncs);
  }

  async delete(digest: Digest): Promise<void> {
    await rm(this.pathOf(digest), { force: true });
  }
}

/** The disk (ENOSPC) or the user's quota (EDQUOT) is full: the content can be served but not kept. */
export function diskFullReason(err: unknown): 'enospc' | 'edquot' | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' ? 'enospc' : code === 'EDQUOT' ? 'edquot' : undefined;
}

export function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
