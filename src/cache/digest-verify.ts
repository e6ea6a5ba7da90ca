// Verifying content against its digest while it streams: hash every chunk, refuse a byte past the expected
// size at once, and check size and digest at the end. Nothing unverified may become a cached file.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { digestAlgorithm, type Digest } from '../registry/reference.js';

export type MismatchReason = 'digest' | 'size' | 'truncated';

export class DigestMismatchError extends Error {
  readonly code = 'DIGEST_MISMATCH';
  constructor(
    readonly digest: Digest,
    readonly reason: MismatchReason,
    message: string,
  ) {
    super(message);
    this.name = 'DigestMismatchError';
  }
}

/** Incremental check of one blob; `update` throws as soon as the content is too long. */
export class DigestVerifier {
  private readonly hash: Hash;
  private length = 0;

  constructor(
    readonly digest: Digest,
    /** Expected size; undefined when upstream did not announce one (then only the digest decides). */
    readonly expectedSize: number | undefined,
    hash?: Hash,
  ) {
    this.hash = hash ?? createHash(digestAlgorithm(digest));
  }

  get bytes(): number {
    return this.length;
  }

  update(chunk: Buffer): void {
    this.check(chunk.length);
    this.add(chunk);
  }

  /** Throws when `bytes` more would take the content past its expected size; hashes nothing. */
  check(bytes: number): void {
    if (this.expectedSize !== undefined && this.length + bytes > this.expectedSize) {
      throw new DigestMismatchError(
        this.digest,
        'size',
        `${this.digest}: more than the expected ${this.expectedSize} bytes`,
      );
    }
  }

  /** Hashes a chunk already checked. */
  add(chunk: Buffer): void {
    this.length += chunk.length;
    this.hash.update(chunk);
  }

  /** The state after the bytes so far, to go on from elsewhere (a copy: this verifier is unaffected). */
  snapshot(): { length: number; hash: Hash } {
    return { length: this.length, hash: this.hash.copy() };
  }

  /** A verifier that goes on from a snapshot: the first `length` bytes are already hashed. */
  static resume(digest: Digest, expectedSize: number | undefined, from: { length: number; hash: Hash }): DigestVerifier {
    const verifier = new DigestVerifier(digest, expectedSize, from.hash.copy());
    verifier.length = from.length;
    return verifier;
  }

  /** Called at end of input: throws unless every byte arrived and the digest matches. */
  finish(): void {
    if (this.expectedSize !== undefined && this.length !== this.expectedSize) {
      throw new DigestMismatchError(
        this.digest,
        'truncated',
        `${this.digest}: got ${this.length} of ${this.expectedSize} bytes`,
      );
    }
    const actual = `${digestAlgorithm(this.digest)}:${this.hash.digest('hex')}`;
    if (actual !== this.digest) {
      throw new DigestMismatchError(this.digest, 'digest', `${this.digest}: content hashes to ${actual}`);
    }
  }
}

/** Reads `body` to its end and throws DigestMismatchError unless it is exactly the content named by `digest`. */
export async function verifyStream(body: AsyncIterable<Buffer>, digest: Digest, expectedSize: number | undefined): Promise<void> {
  const verifier = new DigestVerifier(digest, expectedSize);
  for await (const chunk of body) verifier.update(chunk);
  verifier.finish();
}

/** A pass-through Transform that fails the pipeline before EOF on excess bytes, and at EOF on any mismatch. */
export function createVerifyStream(digest: Digest, expectedSize: number | undefined): Transform {
  const verifier = new DigestVerifier(digest, expectedSize);
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      try {
        verifier.update(chunk);
        callback(null, chunk);
      } catch (err) {
        callback(err as Error);
      }
    },
    flush(callback: TransformCallback) {
      try {
        verifier.finish();
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
  });
}
