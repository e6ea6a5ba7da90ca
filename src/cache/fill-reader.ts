// One client's read of a download: it follows the temp file up to what is on disk, then the stored file. Each
// client reads on its own (no shared tee), so a slow or vanished client never slows the download or the others,
// and a late joiner attaches at any moment (STYLE.md, "Streaming conventions").
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ByteRange } from '../registry/byte-range.js';
import { isNotFound, type BlobStore } from './blob-store.js';
import type { FillView } from './fill-progress.js';
import { passThrough, type Refetch } from './passthrough.js';

const CHUNK = 256 * 1024;
/**
 * How long a reader waits for a whole chunk before it sends what there is. At 100 MB/s a chunk takes ~3 ms; from
 * an upstream trickling under 256 KiB a minute, a reader that waited for whole chunks sent nothing for longer than
 * the send timeout (routes.ts cuts a response whose body yields nothing for `http.idleTimeout`) and its client lost
 * a download that was still going.
 */
const HOLD_MS = 1_000;

export interface FollowOptions {
  /** Overrides HOLD_MS (tests). */
  holdMs?: number;
}

/**
 * A stream of the blob (or a range of it) that follows the download. Until the digest has been verified the
 * last byte is withheld: a client whose blob fails verification sees a broken response, never a complete one
 * with wrong bytes. `refetch` is how the reader goes on after a full disk (see passthrough.ts).
 */
export function readFill(fill: FillView, store: Pick<BlobStore, 'open'>, range?: ByteRange, refetch?: Refetch, options: FollowOptions = {}): Readable {
  return Readable.from(tail(fill, store, range, refetch, options.holdMs ?? HOLD_MS), { objectMode: false });
}

async function* tail(fill: FillView, store: Pick<BlobStore, 'open'>, range: ByteRange | undefined, refetch: Refetch | undefined, holdMs: number): AsyncGenerator<Buffer> {
  if (fill.isDone()) {
    yield* await readStored(fill, store, range);
    return;
  }
  let position = range?.start ?? 0;
  const handle = await openSpool(fill);
  if (handle === 'stored') {
    yield* await readStored(fill, store, range);
    return;
  }
  let hold: Hold | undefined;
  try {
    while (handle) {
      // A failure after verification (the fsync or rename hit a full disk) leaves the bytes good: read on.
      const error = fill.error();
      if (error && !fill.isVerified()) {
        if (fill.diskFull()) break;
        throw error;
      }
      const end = range ? range.end + 1 : (fill.size() ?? Number.POSITIVE_INFINITY);
      if (position >= end) return;
      const verified = fill.isVerified() || fill.isDone();
      const written = fill.written();
      const readable = Math.min(end, verified ? written : written - 1);
      if (position >= readable) {
        if (verified) return;
        await fill.changed();
        continue;
      }
      // While upstream is still sending, read whole chunks: the download lands in pieces of a few tens of KiB,
      // and a read, a buffer and a socket write per piece were a good part of a cold pull's CPU (issue 16,
      // bench/TRACE-cold.md). A chunk is ~3 ms of a 100 MB/s stream; the end of a range, and everything once
      // the last byte is on disk, go at once; so does what there is once the reader has waited `holdMs` for more.
      if (!verified && written < (fill.size() ?? Number.POSITIVE_INFINITY) && readable < end && readable - position < CHUNK) {
        hold ??= new Hold(holdMs);
        if (!hold.over) {
          await Promise.race([fill.changed(), hold.ended]);
          continue;
        }
      }
      hold?.cancel();
      hold = undefined;
      const buffer = Buffer.allocUnsafe(Math.min(CHUNK, readable - position));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) throw new Error(`temp file of ${fill.digest} is shorter than recorded`);
      position += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
    yield* passThrough(fill, handle, position, range, refetch);
  } finally {
    hold?.cancel();
    await handle?.close();
  }
}

/** A reader's wait for a whole chunk: over after `ms`. */
class Hold {
  over = false;
  readonly ended: Promise<void>;
  private timer: NodeJS.Timeout | undefined;

  constructor(ms: number) {
    this.ended = new Promise((resolve) => {
      this.timer = setTimeout(() => {
        this.over = true;
        resolve();
      }, ms);
    });
  }

  cancel(): void {
    clearTimeout(this.timer);
  }
}

/**
 * The temp file, or 'stored' when it is gone because the download succeeded (renamed into place), or
 * undefined when the disk filled up (removed, or never made).
 */
async function openSpool(fill: FillView): Promise<FileHandle | 'stored' | undefined> {
  try {
    if (fill.spoolPath !== undefined) return await open(fill.spoolPath, 'r');
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  await fill.settled;
  if (fill.isDone()) return 'stored';
  if (fill.diskFull()) return undefined;
  throw fill.error() ?? new Error(`temp file of ${fill.digest} is gone`);
}

async function readStored(fill: FillView, store: Pick<BlobStore, 'open'>, range: ByteRange | undefined): Promise<Readable> {
  const stored = await store.open(fill.digest);
  if (!stored) throw new Error(`blob ${fill.digest} vanished after its download`);
  return stored.read(range);
}
