// BlobFills on their own (a disk store, a LevelDB index, an in-memory upstream): one download per digest however
// many readers, Range resume after a broken body, failures that never hand a reader a complete wrong body, and a
// full disk that still serves verified bytes.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskBlobStore, type BlobStore, type BlobWriter, type BlobWriterOptions } from '../../src/cache/blob-store.js';
import { BlobFills, type FillSource } from '../../src/cache/fills.js';
import { InUse } from '../../src/cache/in-use.js';
import { BlobIndex } from '../../src/index/blob-index.js';
import { openIndex, type IndexDb } from '../../src/index/db.js';
import { Metrics } from '../../src/metrics/metrics.js';
import type { Digest, Repository } from '../../src/registry/reference.js';
import { content } from '../contract/blob-store.contract.js';
import { MemoryUpstream, PIECE } from '../fixtures/memory-upstream.js';

/** The upstream of the current test's fills (set by its setup). */
let source: FillSource;
const repo = 'library/test' as Repository;
let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

async function setup(options: { diskBytes?: number } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'regmirror-fills-'));
  const disk = new DiskBlobStore(dir);
  await disk.init();
  const store = options.diskBytes === undefined ? disk : new FullDisk(disk, options.diskBytes);
  const db: IndexDb = await openIndex(dir);
  const index = new BlobIndex(db, 100);
  const metrics = new Metrics(new Registry());
  const upstream = new MemoryUpstream();
  const inUse = new InUse();
  const fills = new BlobFills({ store, index, metrics, log: pino({ level: 'silent' }), inUse });
  source = { upstream, fillTimeoutMs: 30_000 };
  cleanup.push(async () => {
    await fills.abortAll();
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });
  const tempFiles = () => readdir(join(dir, 'tmp'));
  return { disk, index, metrics, upstream, inUse, fills, tempFiles };
}

/** A reader's whole body, or its error along with how many bytes it got first. */
async function drain(stream: Readable): Promise<{ bytes: Buffer; error?: unknown }> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
    return { bytes: Buffer.concat(chunks) };
  } catch (error) {
    return { bytes: Buffer.concat(chunks), error };
  }
}

async function read(fills: BlobFills, digest: Digest, range?: { start: number; end: number }) {
  const joined = await fills.join(repo, digest, source);
  if (!joined) throw new Error('upstream has no such blob');
  return drain(joined.fill.read(range));
}

async function counter(metric: { get(): Promise<{ values: Array<{ labels: object; value: number }> }> }, labels: object = {}) {
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l)).reduce((sum, v) => sum + v.value, 0);
}

describe('BlobFills', () => {
  it('lists a download in flight with its repository, registry, bytes on disk and readers, and drops it once stored', async () => {
    const { fills, upstream } = await setup();
    const { bytes, digest } = content(1_500_000);
    upstream.add(digest, bytes, 'application/vnd.oci.image.layer.v1.tar+gzip');
    let resume!: () => void;
    upstream.faults.push({ kind: 'pause', after: 600_000, until: new Promise((resolve) => (resume = resolve)) });
    const joined = await fills.join(repo, digest, source);
    if (!joined) throw new Error('no fill');
    const readers = [joined.fill.read(), joined.fill.read()];
    // Bounded: the pause holds the download at 600 000 bytes until resumed.
    await expect.poll(() => fills.downloads()[0]?.written, { timeout: 5000 }).toBe(600_000);
    expect(fills.downloads()).toEqual([
      { digest, repository: repo, registry: upstream.name, startedAt: expect.any(Number) as number, written: 600_000, size: bytes.length, readers: 2 },
    ]);
    resume();
    await Promise.all(readers.map(drain));
    await fills.settled(digest);
    expect(fills.downloads()).toEqual([]);
    expect(joined.fill.readers).toBe(0);
  });

  it('serves one blob to 20 concurrent readers, late joiners included, with a single upstream GET', async () => {
    const { fills, upstream, disk, index, inUse, metrics, tempFiles } = await setup();
    const { bytes, digest } = content(1_500_000);
    upstream.add(digest, bytes, 'application/vnd.oci.image.layer.v1.tar+gzip');
    let resume!: () => void;
    upstream.faults.push({ kind: 'pause', after: 600_000, until: new Promise((resolve) => (resume = resolve)) });
    const first = await Promise.all(Array.from({ length: 10 }, () => fills.join(repo, digest, source)));
    expect(first.filter((j) => j?.coalesced)).toHaveLength(9);
    expect(inUse.has(digest)).toBe(true);
    const readers = first.map((j) => drain(j!.fill.read()));
    // Upstream paused mid-body: the next ten join a download under way, then it goes on.
    await expect.poll(async () => (await tempFiles()).length).toBe(1);
    readers.push(...Array.from({ length: 10 }, () => read(fills, digest)));
    resume();
    const results = await Promise.all(readers);
    for (const result of results) expect(result.bytes.equals(bytes)).toBe(true);
    await fills.settled(digest);
    expect(upstream.fetches).toEqual([{ digest, offset: undefined }]);
    expect(await disk.stat(digest)).toEqual({ digest, size: bytes.length });
    expect(await index.get(digest)).toMatchObject({ size: bytes.length, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' });
    expect(await counter(metrics.fills, { result: 'ok' })).toBe(1);
    await expect.poll(() => inUse.has(digest)).toBe(false);
  });

  it('resumes a broken upstream body with a Range request from the last byte received', async () => {
    const { fills, upstream, disk, metrics } = await setup();
    const { bytes, digest } = content(400_000);
    upstream.add(digest, bytes);
    upstream.faults.push({ kind: 'break', after: 150_000 });
    const results = await Promise.all([read(fills, digest), read(fills, digest), read(fills, digest, { start: 100_000, end: 299_999 })]);
    expect(results[0].bytes.equals(bytes)).toBe(true);
    expect(results[1].bytes.equals(bytes)).toBe(true);
    expect(results[2].bytes.equals(bytes.subarray(100_000, 300_000))).toBe(true);
    await fills.settled(digest);
    expect(upstream.fetches.map((f) => f.offset)).toEqual([undefined, 150_000]);
    expect(await counter(metrics.fillResumes)).toBe(1);
    expect(await disk.stat(digest)).toEqual({ digest, size: bytes.length });
  });

  it('fails every reader, without its last byte, when upstream keeps breaking past the resumes; nothing is cached', async () => {
    const { fills, upstream, disk, index, inUse, metrics, tempFiles } = await setup();
    const { bytes, digest } = content(400_000);
    upstream.add(digest, bytes);
    upstream.faults.push(...[0, 1, 2, 3].map(() => ({ kind: 'break' as const, after: 50_000 })));
    const results = await Promise.all(Array.from({ length: 5 }, () => read(fills, digest)));
    for (const result of results) {
      expect(result.error).toMatchObject({ code: 'UND_ERR_SOCKET' });
      expect(result.bytes.length).toBeLessThan(bytes.length);
      expect(result.bytes.equals(bytes.subarray(0, result.bytes.length))).toBe(true);
    }
    await fills.settled(digest);
    expect(upstream.fetches.map((f) => f.offset)).toEqual([undefined, 50_000, 100_000, 150_000]);
    expect(await disk.stat(digest)).toBeUndefined();
    expect(await index.get(digest)).toBeUndefined();
    expect(await tempFiles()).toEqual([]);
    expect(await counter(metrics.verifyFailures, { reason: 'truncated' })).toBe(1);
    await expect.poll(() => inUse.has(digest)).toBe(false);
    // The failure is not remembered: the next request downloads again.
    expect((await read(fills, digest)).bytes.equals(bytes)).toBe(true);
  });

  it('refuses a body whose digest does not match: readers get an error and never a complete body', async () => {
    const { fills, upstream, disk, metrics, tempFiles } = await setup();
    const { bytes, digest } = content(300_000);
    upstream.add(digest, bytes);
    upstream.faults.push({ kind: 'corrupt', at: 200_000 });
    const results = await Promise.all([read(fills, digest), read(fills, digest)]);
    for (const result of results) {
      expect(result.error).toMatchObject({ code: 'DIGEST_MISMATCH', reason: 'digest' });
      expect(result.bytes.length).toBeLessThan(bytes.length);
    }
    await fills.settled(digest);
    expect(await disk.stat(digest)).toBeUndefined();
    expect(await tempFiles()).toEqual([]);
    expect(await counter(metrics.verifyFailures, { reason: 'digest' })).toBe(1);
  });

  it('answers undefined for a blob upstream does not have, and does not remember the answer', async () => {
    const { fills, upstream, inUse } = await setup();
    const { digest } = content(10);
    expect(await fills.join(repo, digest, source)).toBeUndefined();
    expect(await fills.join(repo, digest, source)).toBeUndefined();
    expect(upstream.fetches).toHaveLength(2);
    expect(inUse.has(digest)).toBe(false);
  });

  it("lets another registry's 404 for the same digest reach nobody but its own clients", async () => {
    const { fills } = await setup();
    const { bytes, digest } = content(70_000);
    const ghcr = new MemoryUpstream('ghcr.io');
    ghcr.add(digest, bytes);
    // docker.io does not have it and answers first; ghcr.io's client, arriving meanwhile, still gets its blob.
    const [fromHub, fromGhcr] = await Promise.all([fills.join(repo, digest, source), fills.join(repo, digest, { upstream: ghcr, fillTimeoutMs: 30_000 })]);
    expect(fromHub).toBeUndefined();
    expect(fromGhcr).toBeDefined();
    expect((await drain((fromGhcr as { fill: { read(): Readable } }).fill.read())).bytes.equals(bytes)).toBe(true);
    expect(ghcr.fetches).toHaveLength(1);
  });

  it('adopts a stored file whose index record a crash lost, without asking upstream', async () => {
    const { fills, upstream, disk, index } = await setup();
    const { bytes, digest } = content(70_000);
    const writer = await disk.createWriter(digest, bytes.length);
    writer.end(bytes);
    await new Promise((resolve) => writer.once('finish', resolve));
    await writer.commit();
    expect((await read(fills, digest)).bytes.equals(bytes)).toBe(true);
    expect(upstream.fetches).toEqual([]);
    expect(await index.get(digest)).toMatchObject({ size: bytes.length, manifest: false });
  });

  it('aborts a stalled download at shutdown: its readers fail and its temp file is gone when abortAll resolves', async () => {
    const { fills, upstream, disk, tempFiles } = await setup();
    const { bytes, digest } = content(300_000);
    upstream.add(digest, bytes);
    upstream.faults.push({ kind: 'stall', after: 100_000 });
    const reading = read(fills, digest);
    await expect.poll(async () => (await tempFiles()).length).toBe(1);
    await fills.abortAll();
    expect(await tempFiles()).toEqual([]);
    const result = await reading;
    expect(result.error).toBeDefined();
    expect(result.bytes.length).toBeLessThanOrEqual(100_000);
    expect(await disk.stat(digest)).toBeUndefined();
  });
});

describe('BlobFills on a full disk', () => {
  it('serves verified bytes through the pass-through when the writer hits ENOSPC, and caches nothing', async () => {
    const { fills, upstream, disk, index, metrics, tempFiles } = await setup({ diskBytes: 120_000 });
    const { bytes, digest } = content(500_000);
    upstream.add(digest, bytes);
    const results = await Promise.all([
      read(fills, digest),
      read(fills, digest),
      read(fills, digest, { start: 60_000, end: 399_999 }),
      read(fills, digest, { start: 0, end: 99_999 }),
    ]);
    expect(results.map((r) => r.error)).toEqual([undefined, undefined, undefined, undefined]);
    expect(results[0].bytes.equals(bytes)).toBe(true);
    expect(results[1].bytes.equals(bytes)).toBe(true);
    expect(results[2].bytes.equals(bytes.subarray(60_000, 400_000))).toBe(true);
    expect(results[3].bytes.equals(bytes.subarray(0, 100_000))).toBe(true);
    await fills.settled(digest);
    expect(await counter(metrics.storeWriteFailures, { reason: 'enospc' })).toBe(1);
    expect(await disk.stat(digest)).toBeUndefined();
    expect(await index.get(digest)).toBeUndefined();
    expect(await tempFiles()).toEqual([]);
    // Readers went on from upstream with Range requests; the download asked once and did not resume after ENOSPC.
    expect(upstream.fetches[0]).toEqual({ digest, offset: undefined });
    expect(upstream.fetches.slice(1).every((f) => f.offset !== undefined)).toBe(true);
    expect(await counter(metrics.fillResumes)).toBe(0);
  });

  it('hands a reader that fell behind the bytes on disk the rest of the temp file in chunks, not in one buffer of it all', async () => {
    const { fills, upstream } = await setup({ diskBytes: 1_500_000 });
    const { bytes, digest } = content(2_000_000);
    upstream.add(digest, bytes);
    const joined = await fills.join(repo, digest, source);
    if (!joined) throw new Error('upstream has no such blob');
    const reader = joined.fill.read();
    const chunks: Buffer[] = [];
    // Its client takes the first chunk, then stops reading (the temp file is open) until the disk has filled up.
    reader.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (chunks.length === 1) reader.pause();
    });
    await expect.poll(() => chunks.length).toBe(1);
    await fills.settled(digest);
    const ended = new Promise((resolve, reject) => reader.once('end', resolve).once('error', reject));
    reader.resume();
    await ended;
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    // What a slow client holds in memory stays a chunk, however much of the blob reached the disk.
    expect(Math.max(...chunks.map((c) => c.length))).toBeLessThanOrEqual(256 * 1024);
  });

  it('fails a whole-blob reader without its last byte when upstream sends wrong bytes after the disk filled up', async () => {
    const { fills, upstream, metrics } = await setup({ diskBytes: 100_000 });
    const { bytes, digest } = content(300_000);
    upstream.add(digest, bytes);
    upstream.faults.push({ kind: 'corrupt', at: 299_000 }, { kind: 'corrupt', at: 150_000 }); // download, then the reader's refetch
    const result = await read(fills, digest);
    expect(result.error).toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(result.bytes.length).toBeLessThan(bytes.length);
    expect(upstream.fetches.map((f) => f.offset)).toEqual([undefined, 6 * PIECE]); // the download; the reader's rest after 6 pieces fit
    expect(await counter(metrics.storeWriteFailures, { reason: 'enospc' })).toBe(1);
  });

  it('serves every reader from upstream when not even a temp file fits, and tries to cache again on the next request', async () => {
    const { fills, upstream, metrics, inUse } = await setup({ diskBytes: 0 });
    const { bytes, digest } = content(200_000);
    upstream.add(digest, bytes);
    const results = await Promise.all([read(fills, digest), read(fills, digest)]);
    for (const result of results) expect(result.bytes.equals(bytes)).toBe(true);
    await fills.settled(digest);
    expect(await counter(metrics.storeWriteFailures, { reason: 'enospc' })).toBe(1);
    await expect.poll(() => inUse.has(digest)).toBe(false);
    const before = upstream.fetches.length;
    expect((await read(fills, digest)).bytes.equals(bytes)).toBe(true);
    expect(upstream.fetches[before]).toEqual({ digest, offset: undefined }); // a new download, not the failed one
    expect(await counter(metrics.storeWriteFailures, { reason: 'enospc' })).toBe(2);
  });
});

function enospc(): Error {
  return Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
}

/** The disk store on a disk with room for `capacity` bytes of temp file: writes past it fail with ENOSPC. */
class FullDisk implements BlobStore {
  constructor(
    private readonly inner: DiskBlobStore,
    private readonly capacity: number,
  ) {}

  stat(digest: Digest) {
    return this.inner.stat(digest);
  }

  open(digest: Digest) {
    return this.inner.open(digest);
  }

  delete(digest: Digest) {
    return this.inner.delete(digest);
  }

  async createWriter(digest: Digest, size: number | undefined, options?: BlobWriterOptions): Promise<BlobWriter> {
    if (this.capacity === 0) throw enospc();
    return new CappedWriter(await this.inner.createWriter(digest, size, options), this.capacity);
  }
}

class CappedWriter extends Writable implements BlobWriter {
  constructor(
    private readonly inner: BlobWriter,
    private readonly capacity: number,
  ) {
    super();
  }

  get spoolPath(): string {
    return this.inner.spoolPath;
  }

  get bytesWritten(): number {
    return this.inner.bytesWritten;
  }

  hashedPrefix() {
    return this.inner.hashedPrefix();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.inner.bytesWritten + chunk.length > this.capacity) callback(enospc());
    else this.inner.write(chunk, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.inner.end(callback);
  }

  commit() {
    return this.inner.commit();
  }

  abort() {
    this.destroy();
    return this.inner.abort();
  }
}
