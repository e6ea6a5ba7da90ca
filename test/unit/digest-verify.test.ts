// Digest verification while streaming: what passes, what fails at EOF, and what fails before EOF.
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { createVerifyStream, DigestMismatchError, DigestVerifier } from '../../src/cache/digest-verify.js';
import { parseDigest, type Digest } from '../../src/registry/reference.js';

const content = Buffer.from('regmirror blob content, long enough to be split into a few chunks');

function digestOf(algorithm: 'sha256' | 'sha512', bytes: Buffer): Digest {
  return parseDigest(`${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`);
}

function chunks(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

/** A Writable that keeps what it receives. */
function collector(): { sink: Writable; received: () => Buffer } {
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      parts.push(chunk);
      callback();
    },
  });
  return { sink, received: () => Buffer.concat(parts) };
}

async function mismatchOf(promise: Promise<unknown>): Promise<DigestMismatchError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof DigestMismatchError) return err;
    throw new Error(`expected a DigestMismatchError, got ${String(err)}`);
  }
  throw new Error('expected a DigestMismatchError, but the pipeline succeeded');
}

describe('createVerifyStream', () => {
  it.each(['sha256', 'sha512'] as const)('passes correct %s content through unchanged', async (algorithm) => {
    const { sink, received } = collector();
    await pipeline(Readable.from(chunks(content, 7)), createVerifyStream(digestOf(algorithm, content), content.length), sink);
    expect(received().equals(content)).toBe(true);
  });

  it('passes an empty blob whose digest and size match', async () => {
    const empty = Buffer.alloc(0);
    const { sink, received } = collector();
    await pipeline(Readable.from([empty]), createVerifyStream(digestOf('sha256', empty), 0), sink);
    expect(received()).toHaveLength(0);
  });

  it.each(['sha256', 'sha512'] as const)('fails with reason digest when one %s content byte is flipped', async (algorithm) => {
    const corrupted = Buffer.from(content);
    corrupted[10] = (corrupted[10] ?? 0) ^ 0x01;
    const { sink } = collector();
    const err = await mismatchOf(
      pipeline(Readable.from(chunks(corrupted, 7)), createVerifyStream(digestOf(algorithm, content), content.length), sink),
    );
    expect(err.reason).toBe('digest');
    expect(err.code).toBe('DIGEST_MISMATCH');
    expect(err.digest).toBe(digestOf(algorithm, content));
  });

  it('fails with reason truncated when the content ends short of the expected size', async () => {
    const { sink } = collector();
    const err = await mismatchOf(
      pipeline(Readable.from([content.subarray(0, content.length - 1)]), createVerifyStream(digestOf('sha256', content), content.length), sink),
    );
    expect(err.reason).toBe('truncated');
  });

  it('fails with reason size on the first byte past the expected size, before the input ends', { timeout: 10_000 }, async () => {
    let ended = false;
    let pushedExcess = false;
    // Yields the whole blob, then one excess byte, and then never ends: only an error raised before EOF can
    // settle this pipeline.
    const pending = [...chunks(content, 16), Buffer.from('!')];
    const source = new Readable({
      read() {
        const next = pending.shift();
        if (next === undefined) return;
        if (pending.length === 0) pushedExcess = true;
        this.push(next);
      },
    });
    source.on('end', () => {
      ended = true;
    });
    const { sink, received } = collector();
    const err = await mismatchOf(pipeline(source, createVerifyStream(digestOf('sha256', content), content.length), sink));
    expect(err.reason).toBe('size');
    expect(pushedExcess).toBe(true);
    expect(ended).toBe(false);
    expect(source.destroyed).toBe(true);
    // The excess chunk never reaches the destination.
    expect(received().equals(content)).toBe(true);
  });

  it('rejects a chunk that straddles the expected size without forwarding any of it', { timeout: 10_000 }, async () => {
    const source = new Readable({ read() {} });
    source.push(Buffer.concat([content, Buffer.from('!!')]));
    const { sink, received } = collector();
    const err = await mismatchOf(pipeline(source, createVerifyStream(digestOf('sha256', content), content.length), sink));
    expect(err.reason).toBe('size');
    expect(received()).toHaveLength(0);
  });

  it('checks the digest when the expected size is unknown', async () => {
    const ok = collector();
    await pipeline(Readable.from(chunks(content, 5)), createVerifyStream(digestOf('sha256', content), undefined), ok.sink);
    expect(ok.received().equals(content)).toBe(true);

    const longer = Buffer.concat([content, Buffer.from('!')]);
    const err = await mismatchOf(
      pipeline(Readable.from([longer]), createVerifyStream(digestOf('sha256', content), undefined), collector().sink),
    );
    expect(err.reason).toBe('digest');
  });
});

describe('DigestVerifier', () => {
  it('counts bytes and finishes cleanly on matching sha512 content', () => {
    const verifier = new DigestVerifier(digestOf('sha512', content), content.length);
    for (const chunk of chunks(content, 9)) verifier.update(chunk);
    expect(verifier.bytes).toBe(content.length);
    expect(() => verifier.finish()).not.toThrow();
  });

  it('throws reason size from update as soon as a chunk goes past the expected size, without counting it', () => {
    const verifier = new DigestVerifier(digestOf('sha256', content), content.length);
    verifier.update(content);
    let thrown: unknown;
    try {
      verifier.update(Buffer.from('x'));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(DigestMismatchError);
    expect((thrown as DigestMismatchError).reason).toBe('size');
    expect(verifier.bytes).toBe(content.length);
  });

  it('throws reason truncated from finish when bytes are missing', () => {
    const verifier = new DigestVerifier(digestOf('sha256', content), content.length + 1);
    verifier.update(content);
    expect(() => verifier.finish()).toThrow(expect.objectContaining({ reason: 'truncated' }) as Error);
  });

  it('throws reason digest from finish when the size matches but the content differs', () => {
    const other = Buffer.alloc(content.length, 0x61);
    const verifier = new DigestVerifier(digestOf('sha256', content), content.length);
    verifier.update(other);
    expect(() => verifier.finish()).toThrow(expect.objectContaining({ reason: 'digest' }) as Error);
  });
});
