// Readers of a download (readFill over a FillProgress): a temp file renamed into place must not break a late reader.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskBlobStore } from '../../src/cache/blob-store.js';
import { FillProgress } from '../../src/cache/fill-progress.js';
import { readFill } from '../../src/cache/fill-reader.js';
import { content } from '../contract/blob-store.contract.js';

let dir: string;
afterEach(() => rm(dir, { recursive: true, force: true }));

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe('readFill', () => {
  it('serves the stored file to a reader whose temp file was renamed away before it opened it', async () => {
    dir = await mkdtemp(join(tmpdir(), 'regmirror-fill-'));
    const store = new DiskBlobStore(dir);
    await store.init();
    const { bytes, digest } = content(50_000);
    const writer = await store.createWriter(digest, bytes.length);
    const fill = new FillProgress(digest, bytes.length, writer.spoolPath);
    await pipeline(Readable.from([bytes]), writer);
    await writer.commit(); // renamed: spoolPath no longer exists, but the fill has not reported success yet
    const reading = readAll(readFill(fill, store));
    await new Promise((resolve) => setTimeout(resolve, 20));
    fill.succeed(bytes.length);
    expect(await reading).toEqual(bytes);
  });

  it('holds back the last byte until the digest is verified, then releases it before the file is in place', async () => {
    dir = await mkdtemp(join(tmpdir(), 'regmirror-fill-'));
    const store = new DiskBlobStore(dir);
    await store.init();
    const { bytes, digest } = content(50_000);
    const writer = await store.createWriter(digest, bytes.length, { onProgress: (n) => fill.progress(n) });
    const fill = new FillProgress(digest, bytes.length, writer.spoolPath);
    await pipeline(Readable.from([bytes]), writer);
    let received = 0;
    const reading = (async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of readFill(fill, store) as AsyncIterable<Buffer>) {
        chunks.push(chunk);
        received += chunk.length;
      }
      return Buffer.concat(chunks);
    })();
    await expect.poll(() => received).toBe(bytes.length - 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(received).toBe(bytes.length - 1);
    fill.verify(bytes.length); // no commit, no succeed: the temp file is still where it was
    expect(await reading).toEqual(bytes);
    await writer.abort();
  });

  it('fails a reader with the download error when the temp file was removed by a failure', async () => {
    dir = await mkdtemp(join(tmpdir(), 'regmirror-fill-'));
    const store = new DiskBlobStore(dir);
    await store.init();
    const { digest } = content(10);
    const fill = new FillProgress(digest, 10, join(dir, 'tmp', 'gone'));
    const reading = readAll(readFill(fill, store));
    fill.fail(new Error('upstream broke'));
    await expect(reading).rejects.toThrow('upstream broke');
  });

  it('withholds the last byte until the download is verified', async () => {
    dir = await mkdtemp(join(tmpdir(), 'regmirror-fill-'));
    const store = new DiskBlobStore(dir);
    await store.init();
    const { bytes, digest } = content(1000);
    const writer = await store.createWriter(digest, bytes.length, { onProgress: (n) => fill.progress(n) });
    const fill = new FillProgress(digest, bytes.length, writer.spoolPath);
    await pipeline(Readable.from([bytes]), writer);
    const received: Buffer[] = [];
    const reader = readFill(fill, store);
    reader.on('data', (chunk: Buffer) => received.push(chunk));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(Buffer.concat(received).length).toBe(999);
    await writer.commit();
    fill.succeed(bytes.length);
    await new Promise((resolve) => reader.once('end', resolve));
    expect(Buffer.concat(received)).toEqual(bytes);
  });

  it('reads whole chunks while upstream is still sending, and all but the last byte as soon as every byte is on disk', async () => {
    dir = await mkdtemp(join(tmpdir(), 'regmirror-fill-'));
    const store = new DiskBlobStore(dir);
    await store.init();
    const KiB = 1024;
    const { bytes, digest } = content(400 * KiB);
    const writer = await store.createWriter(digest, bytes.length, { onProgress: (n) => fill.progress(n) });
    const fill = new FillProgress(digest, bytes.length, writer.spoolPath);
    const write = (from: number, to: number) => new Promise<void>((resolve, reject) => writer.write(bytes.subarray(from, to), (err) => (err ? reject(err) : resolve())));
    const sizes: number[] = [];
    const reader = readFill(fill, store);
    reader.on('data', (chunk: Buffer) => sizes.push(chunk.length));
    const received = () => sizes.reduce((sum, n) => sum + n, 0);
    await write(0, 100 * KiB);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(received()).toBe(0); // less than a chunk, and more is coming
    await write(100 * KiB, 300 * KiB);
    await expect.poll(received).toBe(300 * KiB - 1 - ((300 * KiB - 1) % (256 * KiB)));
    await write(300 * KiB, 400 * KiB); // the whole blob is on disk: everything but its last byte goes
    await expect.poll(received).toBe(400 * KiB - 1);
    await new Promise<void>((resolve) => writer.end(resolve));
    await writer.commit(); // verifies, then releases the last byte
    fill.succeed(bytes.length);
    await new Promise((resolve) => reader.once('end', resolve));
    expect(received()).toBe(bytes.length);
    expect(sizes[0]).toBe(256 * KiB);
  });
});

describe('readFill from a slow upstream', () => {
  it('sends what is on disk once it has waited its hold for a whole chunk, so a trickling download never goes silent', async () => {
    dir = await mkdtemp(join(tmpdir(), 'regmirror-fill-'));
    const store = new DiskBlobStore(dir);
    await store.init();
    const { bytes, digest } = content(400 * 1024);
    const writer = await store.createWriter(digest, bytes.length, { onProgress: (n) => fill.progress(n) });
    const fill = new FillProgress(digest, bytes.length, writer.spoolPath);
    const write = (from: number, to: number) => new Promise<void>((resolve, reject) => writer.write(bytes.subarray(from, to), (err) => (err ? reject(err) : resolve())));
    const received: Buffer[] = [];
    const reader = readFill(fill, store, undefined, undefined, { holdMs: 50 });
    reader.on('data', (chunk: Buffer) => received.push(chunk));
    const failed = new Promise((resolve) => reader.once('error', resolve));
    // 10 KiB, then nothing more for now: a chunk would take upstream far longer than the hold (or the send timeout).
    await write(0, 10 * 1024);
    await expect.poll(() => Buffer.concat(received).length, { timeout: 2_000 }).toBe(10 * 1024 - 1);
    await write(10 * 1024, 30 * 1024);
    await expect.poll(() => Buffer.concat(received).length, { timeout: 2_000 }).toBe(30 * 1024 - 1);
    expect(Buffer.concat(received).equals(bytes.subarray(0, 30 * 1024 - 1))).toBe(true);
    await writer.abort();
    fill.fail(new Error('upstream cut'));
    await failed;
  });
});
