// The disk store's writer: a temp file under tmp/ that is hashed as it is written and renamed into blobs/ only
// once size and digest check out (commit); abort removes it. See blob-store.ts for the layout.
import type { Hash } from 'node:crypto';
import { type FileHandle, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Digest } from '../registry/reference.js';
import type { BlobInfo, BlobWriter, BlobWriterOptions } from './blob-store.js';
import { DigestVerifier } from './digest-verify.js';
import { ensureDirectory, syncDirectory } from './directories.js';
import { Lane } from './lane.js';

export class DiskBlobWriter extends Writable implements BlobWriter {
  private handle: FileHandle | undefined;
  private readonly verifier: DigestVerifier;
  private written = 0;
  private settled = false;

  constructor(
    readonly digest: Digest,
    size: number | undefined,
    handle: FileHandle,
    readonly spoolPath: string,
    private readonly finalPath: string,
    private readonly options: BlobWriterOptions,
    /** Where this writer's fsyncs wait their turn: the store's, shared by all its writers. */
    private readonly syncs: Lane = new Lane(),
  ) {
    super({ highWaterMark: 1024 * 1024 });
    this.handle = handle;
    this.verifier = new DigestVerifier(digest, size);
  }

  get bytesWritten(): number {
    return this.written;
  }

  hashedPrefix(): { length: number; hash: Hash } | undefined {
    try {
      return this.verifier.snapshot();
    } catch {
      return undefined; // the hash was finished by commit(): the whole content was verified
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this._writev([{ chunk }], callback);
  }

  /**
   * Chunks that arrived while the previous write was on its way go to disk in one writev: upstream bodies come
   * in pieces of a few KiB, and one fs call (plus one wake-up of every reader) per piece was most of a fill's CPU.
   */
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    const buffers = chunks.map(({ chunk }) => chunk);
    try {
      // Refuse excess bytes before they touch the disk.
      this.verifier.check(buffers.reduce((sum, b) => sum + b.length, 0));
    } catch (err) {
      callback(err as Error);
      return;
    }
    writeAll(this.handle as FileHandle, buffers, this.written).then(
      (length) => {
        // Hashed once on disk, so the hash always covers exactly the file (see `hashedPrefix`).
        for (const buffer of buffers) this.verifier.add(buffer);
        this.written += length;
        this.options.onProgress?.(this.written);
        callback();
      },
      (err: Error) => callback(err),
    );
  }

  async commit(): Promise<BlobInfo> {
    if (this.settled) throw new Error('blob writer already settled');
    const handle = this.handle;
    if (!handle || !this.writableFinished) throw new Error('blob writer committed before its stream finished');
    try {
      this.verifier.finish();
      this.options.onVerified?.(this.written);
      // Readers have every byte from here on: durability is the cache's concern, and its fsyncs take turns so
      // they never hold all of the threads those readers need (lane.ts).
      await this.syncs.run(() => handle.sync());
      await handle.close();
      this.handle = undefined;
      const dir = join(this.finalPath, '..');
      await ensureDirectory(dir);
      await rename(this.spoolPath, this.finalPath);
      await this.syncs.run(() => syncDirectory(dir));
      this.settled = true;
      return { digest: this.digest, size: this.written };
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  async abort(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    this.destroy();
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close().catch(() => undefined);
    await unlink(this.spoolPath).catch(() => undefined);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Destroyed without commit (pipeline failure): the handle closes here; abort() removes the file.
    const handle = this.handle;
    if (!handle || this.writableFinished) {
      callback(error);
      return;
    }
    this.handle = undefined;
    handle.close().then(
      () => callback(error),
      () => callback(error),
    );
  }
}

/** The file system took no byte of a write: the download fails, like any other write error. */
export class WriteStalledError extends Error {
  readonly code = 'WRITE_NO_PROGRESS';
  constructor() {
    super('write made no progress');
    this.name = 'WriteStalledError';
  }
}

/** Writes every buffer at `position`, going on after short writes; resolves with the byte count. */
async function writeAll(handle: FileHandle, buffers: Buffer[], position: number): Promise<number> {
  const total = buffers.reduce((sum, b) => sum + b.length, 0);
  let done = (await handle.writev(buffers, position)).bytesWritten;
  if (done < total) {
    // A short write (a full disk on its way, or a signal): the rest goes as one buffer until it is all down.
    const rest = Buffer.concat(buffers).subarray(done);
    while (done < total) {
      const { bytesWritten } = await handle.write(rest, done - (total - rest.length), total - done, position + done);
      if (bytesWritten === 0) throw new WriteStalledError();
      done += bytesWritten;
    }
  }
  return total;
}
