// After the disk filled up during a download: a reader gets the bytes that reached the temp file, then the rest
// straight from upstream, uncached. A whole-blob reader is still verified to the end: it gets its last byte
// only once the digest checks out, so a client never receives a complete response with wrong bytes.
import type { FileHandle } from 'node:fs/promises';
import type { ByteRange } from '../registry/byte-range.js';
import type { UpstreamBlob } from '../upstream/upstream.js';
import { DigestVerifier } from './digest-verify.js';
import type { FillView } from './fill-progress.js';

/** Upstream's body of the blob from `offset` on; undefined when upstream no longer has it. */
export type Refetch = (offset: number) => Promise<UpstreamBlob | undefined>;

const CHUNK = 256 * 1024;

/**
 * Goes on from byte `from` of the blob (or of `range`). `handle` is the reader's open handle on the temp file:
 * still readable though the file is removed; undefined when no temp file was ever made.
 */
export async function* passThrough(
  fill: FillView,
  handle: FileHandle | undefined,
  from: number,
  range: ByteRange | undefined,
  refetch: Refetch | undefined,
): AsyncGenerator<Buffer> {
  const onDisk = fill.diskFull() ?? { length: 0, hash: undefined };
  const size = fill.size();
  const end = range ? range.end + 1 : (size ?? Number.POSITIVE_INFINITY);
  let position = from;
  while (handle && position < Math.min(onDisk.length, end) && range) {
    // A range needs no verification: what is on disk goes out as it is.
    const buffer = Buffer.allocUnsafe(Math.min(CHUNK, Math.min(onDisk.length, end) - position));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) break;
    position += bytesRead;
    yield buffer.subarray(0, bytesRead);
  }
  if (position >= end) return;
  // A whole-blob reader is verified to the end: from scratch, or from the writer's hash over the file.
  let verifier: DigestVerifier | undefined;
  if (!range) {
    // What is on disk is reused whenever the writer's hash covers it: a reader that had not started (fill-reader.ts
    // reads whole chunks mid-download) still takes it from the file, not again from upstream.
    if (handle && position <= onDisk.length && onDisk.hash) {
      verifier = DigestVerifier.resume(fill.digest, size, { length: onDisk.length, hash: onDisk.hash });
      // Bytes up to `position` went out from the file; the rest of what is on disk goes out from it too, a chunk at
      // a time: a reader that fell behind (or had not started) may have most of the blob still to take from it.
      while (position < onDisk.length) {
        const gap = Buffer.allocUnsafe(Math.min(CHUNK, onDisk.length - position));
        const { bytesRead } = await handle.read(gap, 0, gap.length, position);
        if (bytesRead === 0) throw fill.error() ?? new Error('temp file shorter than written');
        position += bytesRead;
        yield gap.subarray(0, bytesRead);
      }
    } else if (position === 0) {
      verifier = new DigestVerifier(fill.digest, size);
    } else {
      throw fill.error() ?? new Error(`cannot go on with ${fill.digest} after the disk filled up`);
    }
  }
  const rest = await refetch?.(position);
  if (!rest) throw fill.error() ?? new Error(`${fill.digest} is gone upstream`);
  let held: Buffer | undefined;
  try {
    for await (const chunk of rest.body as AsyncIterable<Buffer>) {
      const piece = position + chunk.length > end ? chunk.subarray(0, end - position) : chunk;
      verifier?.update(piece);
      position += piece.length;
      // The last piece waits for the digest check (whole-blob readers).
      if (held) yield held;
      held = piece;
      if (position >= end) break;
    }
  } finally {
    rest.body.destroy();
  }
  if (Number.isFinite(end) && position < end) throw new Error(`${fill.digest}: upstream ended at byte ${position} of ${end}`);
  verifier?.finish();
  if (held) yield held;
}
