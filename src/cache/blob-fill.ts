// One upstream download per digest. The download (the "fill") writes a temp file and belongs to no client;
// every client, the first included, reads that file up to what is on disk, so a slow or vanished client
// never slows the download or the others, and a late joiner can attach at any moment.
import type { Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { BlobIndex } from '../index/blob-index.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ByteRange } from '../registry/byte-range.js';
import type { Digest, Repository } from '../registry/reference.js';
import type { Upstream, UpstreamBlob } from '../upstream/upstream.js';
import { diskFullReason, isNotFound, type BlobStore, type BlobWriter } from './blob-store.js';
import { DigestMismatchError, DigestVerifier } from './digest-verify.js';
import type { Retention } from './retention.js';

const TAIL_CHUNK = 256 * 1024;
/** Range requests after a broken upstream body, per download. */
const MAX_RESUMES = 3;
const DEFAULT_MEDIA_TYPE = 'application/octet-stream';

type FillState = 'running' | 'done' | 'failed';

/** A download in progress (or just ended), as its readers see it. */
export class BlobFill {
  state: FillState = 'running';
  error: Error | undefined;
  written = 0;
  /** Size and digest checked: every byte may go out, even before the file is durable and in place. */
  private verified = false;
  /** The temp file being written; set before the fill is handed to any reader. */
  spoolPath = '';
  /**
   * Set when the disk filled up: how many bytes reached the temp file, and the hash over them (undefined
   * when nothing was written or the hash was already finished). Readers go on from upstream.
   */
  diskFull: { length: number; hash: Hash | undefined } | undefined;
  /** Upstream's body from `offset` on: how readers go on after the disk filled up. */
  refetch: ((offset: number) => Promise<UpstreamBlob | undefined>) | undefined;
  private wake!: () => void;
  private changed!: Promise<void>;
  private settle!: () => void;
  /** Resolves when the download has succeeded or failed. */
  readonly settled = new Promise<void>((resolve) => (this.settle = resolve));

  constructor(
    readonly digest: Digest,
    /** Size announced by upstream; set from the file when the download ends. */
    public size: number | undefined,
    readonly mediaType: string,
    private readonly store: BlobStore,
  ) {
    this.rearm();
  }

  /** A method, not a field test, because the state changes across awaits. */
  isDone(): boolean {
    return this.state === 'done';
  }

  progress(written: number): void {
    this.written = written;
    this.notify();
  }

  verify(size: number): void {
    this.size = size;
    this.written = size;
    this.verified = true;
    this.notify();
  }

  succeed(size: number): void {
    this.size = size;
    this.written = size;
    this.state = 'done';
    this.settle();
    this.notify();
  }

  /** The content could not be written (full disk): readers are served from upstream instead. */
  failDiskFull(error: Error, written: { length: number; hash: Hash | undefined }): void {
    this.diskFull = written;
    this.fail(error);
  }

  fail(error: Error): void {
    this.error = error;
    this.state = 'failed';
    this.settle();
    this.notify();
  }

  /**
   * A stream of the blob (or a range of it) that follows the download. Until the digest has been verified
   * the last byte is withheld: a client whose blob fails verification sees a broken response, never a
   * complete one with wrong bytes.
   */
  read(range?: ByteRange): Readable {
    return Readable.from(this.tail(range), { objectMode: false });
  }

  private async *tail(range: ByteRange | undefined): AsyncGenerator<Buffer> {
    if (this.state === 'done') {
      yield* await this.readStored(range);
      return;
    }
    let position = range?.start ?? 0;
    const handle = await this.openSpool();
    if (handle === 'stored') {
      yield* await this.readStored(range);
      return;
    }
    try {
      while (handle) {
        // A failure after verification (the fsync or rename hit a full disk) leaves the bytes good: read on.
        if (this.error && !this.verified) {
          if (this.diskFull) break;
          throw this.error;
        }
        const end = range ? range.end + 1 : (this.size ?? Number.POSITIVE_INFINITY);
        if (position >= end) return;
        const verified = this.verified || this.isDone();
        const readable = Math.min(end, verified ? this.written : this.written - 1);
        if (position >= readable) {
          if (verified) return;
          await this.changed;
          continue;
        }
        const buffer = Buffer.allocUnsafe(Math.min(TAIL_CHUNK, readable - position));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
        if (bytesRead === 0) throw new Error(`temp file of ${this.digest} is shorter than recorded`);
        position += bytesRead;
        yield buffer.subarray(0, bytesRead);
      }
      yield* this.passThrough(handle, position, range);
    } finally {
      await handle?.close();
    }
  }

  /**
   * The temp file, or 'stored' when it is gone because the download succeeded (renamed into place), or
   * undefined when the disk filled up (removed, or never made: then spoolPath stays empty).
   */
  private async openSpool(): Promise<FileHandle | 'stored' | undefined> {
    try {
      if (this.spoolPath !== '') return await open(this.spoolPath, 'r');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    await this.settled;
    if (this.isDone()) return 'stored';
    if (this.diskFull) return undefined;
    throw this.error ?? new Error(`temp file of ${this.digest} is gone`);
  }

  /**
   * After the disk filled up: the bytes that reached the temp file (still readable through this reader's open
   * handle, though the file is removed) and then the rest straight from upstream, uncached. A reader of the
   * whole blob goes on from the writer's hash and still gets its last byte only once the digest checks out.
   */
  private async *passThrough(handle: FileHandle | undefined, from: number, range: ByteRange | undefined): AsyncGenerator<Buffer> {
    const onDisk = this.diskFull ?? { length: 0, hash: undefined };
    const end = range ? range.end + 1 : (this.size ?? Number.POSITIVE_INFINITY);
    let position = from;
    while (handle && position < Math.min(onDisk.length, end) && range) {
      // A range needs no verification: what is on disk goes out as it is.
      const buffer = Buffer.allocUnsafe(Math.min(TAIL_CHUNK, Math.min(onDisk.length, end) - position));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      position += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
    if (position >= end) return;
    // A whole-blob reader is verified to the end: from scratch, or from the writer's hash over the file.
    let verifier: DigestVerifier | undefined;
    if (!range) {
      if (position === 0) verifier = new DigestVerifier(this.digest, this.size);
      else if (handle && position <= onDisk.length && onDisk.hash) {
        verifier = DigestVerifier.resume(this.digest, this.size, { length: onDisk.length, hash: onDisk.hash });
        // Bytes up to `position` went out from the file; the rest of what is on disk goes out from it too.
        const gap = Buffer.allocUnsafe(onDisk.length - position);
        const { bytesRead } = gap.length > 0 ? await handle.read(gap, 0, gap.length, position) : { bytesRead: 0 };
        if (bytesRead !== gap.length) throw this.error ?? new Error('temp file shorter than written');
        if (gap.length > 0) yield gap;
        position = onDisk.length;
      } else {
        throw this.error ?? new Error(`cannot go on with ${this.digest} after the disk filled up`);
      }
    }
    const rest = await this.refetch?.(position);
    if (!rest) throw this.error ?? new Error(`${this.digest} is gone upstream`);
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
    if (Number.isFinite(end) && position < end) throw new Error(`${this.digest}: upstream ended at byte ${position} of ${end}`);
    verifier?.finish();
    if (held) yield held;
  }

  private async readStored(range: ByteRange | undefined): Promise<Readable> {
    const stored = await this.store.open(this.digest);
    if (!stored) throw new Error(`blob ${this.digest} vanished after its download`);
    return stored.read(range);
  }

  private notify(): void {
    const wake = this.wake;
    this.rearm();
    wake();
  }

  private rearm(): void {
    this.changed = new Promise((resolve) => (this.wake = resolve));
  }
}

export interface BlobFillsDeps {
  store: BlobStore;
  index: BlobIndex;
  upstream: Upstream;
  metrics: Metrics;
  log: Logger;
  fillTimeoutMs: number;
  /** Quota reservations and removals in progress; absent in tests of downloads alone. */
  retention?: Retention;
}

export interface JoinedFill {
  fill: BlobFill;
  /** False for the request that started the download. */
  coalesced: boolean;
}

/** The in-flight downloads of one cache instance, by digest. */
export class BlobFills {
  private readonly inFlight = new Map<Digest, Promise<BlobFill | undefined>>();
  private readonly shutdown = new AbortController();
  /** Downloads still writing, so that shutdown can wait until their temp files are gone. */
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly deps: BlobFillsDeps) {}

  /** Joins the download of a digest, starting one if none runs. Resolves once upstream has answered; undefined for 404. */
  async join(repo: Repository, digest: Digest): Promise<JoinedFill | undefined> {
    const running = this.inFlight.get(digest);
    if (running) {
      const fill = await running;
      return fill ? { fill, coalesced: true } : undefined;
    }
    const started = this.start(repo, digest);
    this.inFlight.set(digest, started);
    // A 404 or a failure before the first byte ends the entry at once; a download ends it when settled.
    started.then(
      (fill) => fill ?? this.inFlight.delete(digest),
      () => this.inFlight.delete(digest),
    );
    const fill = await started;
    return fill ? { fill, coalesced: false } : undefined;
  }

  /** Aborts every download (shutdown) and resolves once their temp files are removed; nothing half-written is indexed. */
  async abortAll(): Promise<void> {
    this.shutdown.abort();
    await Promise.all(this.running);
  }

  private async start(repo: Repository, digest: Digest): Promise<BlobFill | undefined> {
    const { store, upstream, metrics, retention } = this.deps;
    // An eviction or GC removing this digest right now finishes first, so it cannot undo this download.
    await retention?.settled(digest);
    // The file may have landed between the caller's index lookup and now (a fill that just ended), or be a
    // file whose record a crash lost: adopt it.
    const stored = await store.stat(digest);
    if (stored) {
      if (!(await this.deps.index.get(digest))) {
        const now = Date.now();
        const record = { size: stored.size, mediaType: DEFAULT_MEDIA_TYPE, manifest: false, createdAt: now, lastAccessAt: now };
        await this.deps.index.put(digest, record);
      }
      const fill = new BlobFill(digest, stored.size, DEFAULT_MEDIA_TYPE, store);
      fill.succeed(stored.size);
      this.inFlight.delete(digest);
      return fill;
    }
    const signal = AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(this.deps.fillTimeoutMs)]);
    const blob = await upstream.fetchBlob(repo, digest, { signal });
    if (!blob) return undefined;
    const mediaType = blob.mediaType ?? DEFAULT_MEDIA_TYPE;
    const fill = new BlobFill(digest, blob.size, mediaType, store);
    fill.refetch = (offset) => upstream.fetchBlob(repo, digest, { offset, signal: AbortSignal.timeout(this.deps.fillTimeoutMs) });
    const unreserve = (await retention?.reserve(blob.size)) ?? (() => undefined);
    let writer: BlobWriter;
    try {
      writer = await store.createWriter(digest, blob.size, {
        onProgress: (written) => fill.progress(written),
        onVerified: (size) => fill.verify(size),
      });
    } catch (err) {
      unreserve();
      blob.body.destroy();
      const full = diskFullReason(err);
      if (!full) throw err;
      // Not even a temp file fits: every reader goes straight to upstream.
      this.diskFull(fill, err as Error, full, { length: 0, hash: undefined });
      return fill;
    }
    fill.spoolPath = writer.spoolPath;
    metrics.fillsInFlight.inc();
    // Detached from every client: it ends by itself, successfully or not.
    const body = Readable.from(this.resuming(repo, digest, blob, signal));
    const running = this.run(fill, writer, body, mediaType, signal).finally(() => {
      unreserve();
      metrics.fillsInFlight.dec();
      this.inFlight.delete(digest);
      this.running.delete(running);
    });
    this.running.add(running);
    return fill;
  }

  /** Resolves once the download of `digest` (if one runs) has ended, successfully or not. */
  async settled(digest: Digest): Promise<void> {
    const fill = await this.inFlight.get(digest)?.catch(() => undefined);
    await fill?.settled;
  }

  /** Whether a download of the digest runs: its content must not be evicted or collected meanwhile. */
  isFilling(digest: Digest): boolean {
    return this.inFlight.has(digest);
  }

  /** Caching this blob failed for space: counted, logged, eviction started; readers go on from upstream. */
  private diskFull(fill: BlobFill, err: Error, reason: 'enospc' | 'edquot', written: { length: number; hash: Hash | undefined }): void {
    const { metrics, log, retention } = this.deps;
    metrics.storeWriteFailures.inc({ reason });
    log.warn({ digest: fill.digest, reason, written: written.length }, 'disk full: serving this blob without caching it');
    retention?.freeSpace().catch((e: unknown) => log.warn({ err: e }, 'eviction after a full disk failed'));
    fill.failDiskFull(err, written);
  }

  /**
   * Upstream's body, resumed with a Range request from the last byte received when the connection breaks
   * (Docker Hub's CDN does drop long downloads). The writer verifies the whole blob whatever the pieces.
   */
  private async *resuming(repo: Repository, digest: Digest, first: UpstreamBlob, signal: AbortSignal): AsyncGenerator<Buffer> {
    let body = first.body;
    let received = 0;
    for (let resumes = 0; ; resumes++) {
      try {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          received += chunk.length;
          yield chunk;
        }
        return;
      } catch (err) {
        body.destroy();
        const resumable = first.size !== undefined && received > 0 && received < first.size;
        if (signal.aborted || !resumable || resumes >= MAX_RESUMES) throw err;
        this.deps.log.warn({ err, digest, received, resumes }, 'upstream body broke, resuming');
        this.deps.metrics.fillResumes.inc();
        const rest = await this.deps.upstream.fetchBlob(repo, digest, { offset: received, signal });
        if (!rest) throw err;
        body = rest.body;
      }
    }
  }

  private async run(fill: BlobFill, writer: BlobWriter, body: Readable, mediaType: string, signal: AbortSignal) {
    const { index, metrics, log } = this.deps;
    const started = Date.now();
    try {
      await pipeline(body, writer, { signal });
      const info = await writer.commit();
      const now = Date.now();
      await index.put(fill.digest, { size: info.size, mediaType, manifest: false, createdAt: now, lastAccessAt: now });
      metrics.upstreamBytes.inc(info.size);
      metrics.fills.inc({ result: 'ok' });
      fill.succeed(info.size);
      log.info({ digest: fill.digest, bytes: info.size, ms: now - started }, 'blob cached');
    } catch (err) {
      await writer.abort();
      metrics.upstreamBytes.inc(writer.bytesWritten);
      const failure = err instanceof Error ? err : new Error(String(err));
      const full = diskFullReason(failure);
      if (failure instanceof DigestMismatchError) {
        metrics.verifyFailures.inc({ reason: failure.reason });
      } else if (fill.size !== undefined && writer.bytesWritten < fill.size && !signal.aborted && !full) {
        metrics.verifyFailures.inc({ reason: 'truncated' });
      }
      metrics.fills.inc({ result: 'error' });
      if (full) {
        this.diskFull(fill, failure, full, writer.hashedPrefix() ?? { length: writer.bytesWritten, hash: undefined });
        return;
      }
      fill.fail(failure);
      log.error({ err: failure, digest: fill.digest, bytes: writer.bytesWritten }, 'blob download failed, nothing cached');
    }
  }
}
