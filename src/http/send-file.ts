// Sends a stored blob with positional reads into pooled buffers. fs.ReadStream allocates a fresh buffer per
// chunk: at hundreds of MB/s that garbage was a tenth of the CPU and most of the RSS (bench/RESULTS.md).
// Here a buffer goes back to the pool once the socket has taken its bytes, so serving costs no allocation,
// and one chunk is read while the previous one is written.
import { ClientGoneError, responseClosed, type Response } from './context.js';

/** 512 KiB: a 1 MiB blob goes in two writes; 32 clients hold at most 32 MiB between them. */
export const CHUNK_BYTES = 512 * 1024;
/** Idle buffers kept for the next response; more than this are left to the garbage collector. */
const POOL_LIMIT = 64;
const pool: Buffer[] = [];

function take(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
}

function give(buffer: Buffer): void {
  if (pool.length < POOL_LIMIT) pool.push(buffer);
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
  let onClose = (): void => undefined;
  let onStall = (): void => undefined;
  const gone = new Promise<never>((_, reject) => {
    onClose = () => reject(new ClientGoneError());
    onStall = () => reject(new SendTimeoutError(timeoutMs));
    if (responseClosed(out)) onClose();
    else out.once('close', onClose);
  });
  gone.catch(() => undefined);
  // Restarted after every completed write: it measures the client's silence, not the whole transfer.
  const stall = setTimeout(() => onStall(), timeoutMs);
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
      await Promise.race([writing, gone]);
      stall.refresh();
      writing = write(out, buffer.subarray(0, length));
      // Awaited on the next turn; until then a failed write must not count as an unhandled rejection.
      writing.catch(() => undefined);
      position += length;
      turn ^= 1;
    }
    await Promise.race([writing, gone]);
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
    const done = (err?: Error | null): void => (err ? reject(err) : resolve());
    // Both response kinds take (chunk, callback); their overloads just don't unify in TypeScript.
    (out as { write(chunk: Buffer, callback: typeof done): boolean }).write(chunk, done);
  });
}
