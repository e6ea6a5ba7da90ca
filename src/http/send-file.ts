// Sends a stored blob with positional reads into pooled buffers. fs.ReadStream allocates a fresh buffer per
// chunk: at hundreds of MB/s that garbage was a tenth of the CPU and most of the RSS (bench/RESULTS.md).
// Here a buffer goes back to the pool once the socket has taken its bytes, so serving costs no allocation,
// and one chunk is read while the previous one is written.
import { ClientGoneError, responseClosed, type Response } from './context.js';

/** 256 KiB: a 1 MiB blob goes in four writes; a response holds two (one read while the other is written). */
export const CHUNK_BYTES = 256 * 1024;
/**
 * Idle buffers kept for the next responses: 256 × 256 KiB = 64 MiB at most, and only while they are used. With 64
 * of 512 KiB, 100 connections needed 200 buffers in flight: the rest were allocated per response (each a fresh
 * mmap above glibc's 128 KiB threshold, page faults on first touch, munmap on collection) and their external
 * memory drove V8's major collections: 17 % of the CPU serving 1 MiB blobs (bench/PROFILE-warm.md).
 */
const POOL_LIMIT = 256;
/** Every TRIM_MS, idle buffers the pool never dipped into since the last trim are freed (a low-water mark). */
const TRIM_MS = 10_000;
const pool: Buffer[] = [];
/** The fewest idle buffers since the last trim: that many sat unused all along. */
let lowWater = 0;
let trimmer: NodeJS.Timeout | undefined;

function trim(): void {
  pool.length -= Math.min(lowWater, pool.length);
  lowWater = pool.length;
  if (pool.length === 0) {
    clearInterval(trimmer);
    trimmer = undefined;
  }
}

function take(): Buffer {
  const buffer = pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
  lowWater = Math.min(lowWater, pool.length);
  return buffer;
}

function give(buffer: Buffer): void {
  if (pool.length >= POOL_LIMIT) return;
  pool.push(buffer);
  if (!trimmer) {
    lowWater = pool.length;
    trimmer = setInterval(trim, TRIM_MS);
    trimmer.unref();
  }
}

export type ReadAt = (buffer: Buffer, length: number, position: number) => Promise<number>;

/** The client took no bytes for the send timeout: its response was cut so it stops pinning our buffers. */
export class SendTimeoutError extends Error {
  readonly code = 'SEND_TIMEOUT';
  constructor(readonly timeoutMs: number) {
    super(`client read nothing for ${timeoutMs} ms`);
    this.name = 'SendTimeoutError';
  }
}

/**
 * Writes bytes [start, end] of a file to `out` and resolves with the count sent, or rejects when the client
 * goes away, or when no write completes for `timeoutMs` (a client that stops reading would otherwise hold
 * two chunks and its socket forever: issue 14, finding 2). `out` is an HTTP response whose headers are set;
 * ending it is left to the caller.
 */
export async function sendFileRange(out: Response, readAt: ReadAt, start: number, end: number, timeoutMs: number): Promise<number> {
  // Why the send ends early, once known; and the rejection of the one wait in progress. Not a long-lived promise
  // raced against each write: Promise.race leaves a reaction (and a promise) on it per call, kept until the
  // response ends: 8,192 per 1 GiB download, about 2 MB of heap each (bench/PROFILE-warm.md).
  let failure: Error | undefined;
  let interrupt: ((err: Error) => void) | undefined;
  const fail = (err: Error): void => {
    failure ??= err;
    interrupt?.(failure);
  };
  const onClose = (): void => fail(new ClientGoneError());
  /** Resolves when `write` has completed; rejects at once if the client goes away or stalls meanwhile. */
  const settled = (write: Promise<void>): Promise<void> => {
    if (failure) return Promise.reject(failure);
    return new Promise<void>((resolve, reject) => {
      interrupt = reject;
      write.then(resolve, reject);
    }).finally(() => (interrupt = undefined));
  };
  if (responseClosed(out)) onClose();
  else out.once('close', onClose);
  // Restarted after every completed write: it measures the client's silence, not the whole transfer.
  const stall = setTimeout(() => fail(new SendTimeoutError(timeoutMs)), timeoutMs);
  const buffers = [take(), take()] as const;
  let writing: Promise<void> = Promise.resolve();
  let position = start;
  let turn = 0;
  let broken = false;
  try {
    while (position <= end) {
      // This buffer's previous write finished one turn ago (awaited below), so it is free to fill.
      const buffer = buffers[turn] as Buffer;
      const length = await readAt(buffer, Math.min(CHUNK_BYTES, end - position + 1), position);
      if (length === 0) throw new Error(`blob file ended at byte ${position}, before ${end + 1}`);
      await settled(writing);
      stall.refresh();
      writing = write(out, buffer.subarray(0, length));
      // Awaited on the next turn; until then a failed write must not count as an unhandled rejection.
      writing.catch(() => undefined);
      position += length;
      turn ^= 1;
    }
    await settled(writing);
    return position - start;
  } catch (err) {
    broken = true;
    // Cutting the response closes the socket (HTTP/1) or the stream (HTTP/2), and with it the pending write.
    if (err instanceof SendTimeoutError && !responseClosed(out)) out.destroy(err);
    throw err;
  } finally {
    clearTimeout(stall);
    out.off('close', onClose);
    // A write the socket never finished may still reference its buffer: those are not reused.
    if (!broken) for (const buffer of buffers) give(buffer);
  }
}

function write(out: Response, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    // A write issued after the client's reset but before the response's 'close' fails this way: the client is gone,
    // which is not a failure of ours to log (smaller chunks made this race common enough to see in tests).
    const done = (err?: Error | null): void => {
      if (!err) resolve();
      else reject((err as NodeJS.ErrnoException).code === 'ERR_STREAM_DESTROYED' ? new ClientGoneError() : err);
    };
    // Both response kinds take (chunk, callback); their overloads just don't unify in TypeScript.
    (out as { write(chunk: Buffer, callback: typeof done): boolean }).write(chunk, done);
  });
}
