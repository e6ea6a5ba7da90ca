// The BlobStore contract: every implementation must pass it (see blob-store.test.ts for the disk store).
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { expect, it } from 'vitest';
import type { BlobStore } from '../../src/cache/blob-store.js';
import { DigestMismatchError } from '../../src/cache/digest-verify.js';
import type { Digest } from '../../src/registry/reference.js';

export function content(size: number, seed = 1): { bytes: Buffer; digest: Digest } {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed * 7) & 0xff;
  return { bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

export function blobStoreContract(create: () => Promise<BlobStore>): void {
  it('stores verified content and reads it back whole and by range', async () => {
    const store = await create();
    const { bytes, digest } = content(300_000);
    const writer = await store.createWriter(digest, bytes.length);
    await pipeline(Readable.from([bytes.subarray(0, 100_000), bytes.subarray(100_000)]), writer);
    expect(await writer.commit()).toEqual({ digest, size: bytes.length });
    expect(await store.stat(digest)).toEqual({ digest, size: bytes.length });
    const opened = await store.open(digest);
    expect(opened?.size).toBe(bytes.length);
    expect(await readAll(opened!.read({ start: 10, end: 19 }))).toEqual(bytes.subarray(10, 20));
    const again = await store.open(digest);
    expect(await readAll(again!.read())).toEqual(bytes);
  });

  it('refuses content whose digest does not match, leaving nothing stored', async () => {
    const store = await create();
    const { bytes, digest } = content(1000);
    const wrong = Buffer.from(bytes);
    wrong[500] = (wrong[500] ?? 0) ^ 1;
    const writer = await store.createWriter(digest, bytes.length);
    await pipeline(Readable.from([wrong]), writer);
    await expect(writer.commit()).rejects.toBeInstanceOf(DigestMismatchError);
    expect(await store.stat(digest)).toBeUndefined();
    expect(await store.open(digest)).toBeUndefined();
  });

  it('refuses bytes past the announced size before they are written', async () => {
    const store = await create();
    const { bytes, digest } = content(1000);
    const writer = await store.createWriter(digest, 999);
    await expect(pipeline(Readable.from([bytes]), writer)).rejects.toMatchObject({ reason: 'size' });
    await writer.abort();
    expect(await store.stat(digest)).toBeUndefined();
  });

  it('aborts idempotently and forgets the content', async () => {
    const store = await create();
    const { bytes, digest } = content(1000);
    const writer = await store.createWriter(digest, bytes.length);
    writer.write(bytes.subarray(0, 10));
    await writer.abort();
    await writer.abort();
    expect(await store.stat(digest)).toBeUndefined();
  });

  it('deletes stored content, and deleting twice is harmless', async () => {
    const store = await create();
    const { bytes, digest } = content(10);
    const writer = await store.createWriter(digest, bytes.length);
    await pipeline(Readable.from([bytes]), writer);
    await writer.commit();
    await store.delete(digest);
    await store.delete(digest);
    expect(await store.stat(digest)).toBeUndefined();
  });
}
