// One download of one blob: upstream → writer (verifies while writing) → temp file → rename into the store. It
// belongs to no client: its own AbortSignal (shutdown) and timeout, so a client hanging up stops only its own
// reader [distribution proxyblobstore.go]. It alone moves its FillProgress on; clients read it with readFill.
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { BlobIndex } from '../index/blob-index.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ByteRange } from '../registry/byte-range.js';
import type { Digest, Repository } from '../registry/reference.js';
import type { Upstream } from '../upstream/upstream.js';
import { diskFullReason, type BlobStore, type BlobWriter } from './blob-store.js';
import { DigestMismatchError } from './digest-verify.js';
import { FillProgress, type OnDisk } from './fill-progress.js';
import { readFill } from './fill-reader.js';
import type { Refetch } from './passthrough.js';
import { resumingBody } from './resume.js';
import type { Retention } from './retention.js';

const DEFAULT_MEDIA_TYPE = 'application/octet-stream';

export interface FillDeps {
  store: BlobStore;
  index: BlobIndex;
  upstream: Upstream;
  metrics: Metrics;
  log: Logger;
  fillTimeoutMs: number;
  /** Quota reservations and removals in progress; absent in tests of downloads alone. */
  retention?: Pick<Retention, 'settled' | 'reserve' | 'freeSpace'> | undefined;
}

export class BlobFill {
  /** Resolves once the download has succeeded or failed; a failed one has removed its temp file by then. */
  readonly settled: Promise<void>;
  /** Client reads of this download open now (the status page's "clients attached"). */
  private attached = 0;

  private constructor(
    private readonly deps: FillDeps,
    private readonly progress: FillProgress,
    readonly mediaType: string,
    /** Upstream's body from an offset on: how readers go on after the disk filled up. */
    private readonly refetch: Refetch | undefined,
  ) {
    this.settled = progress.settled;
  }

  get digest(): Digest {
    return this.progress.digest;
  }

  /** Size announced by upstream; the verified size once the download ended. */
  get size(): number | undefined {
    return this.progress.size();
  }

  /** Bytes of the download on disk so far. */
  get written(): number {
    return this.progress.written();
  }

  /** Stored (or failed): nothing is downloading any more. */
  get finished(): boolean {
    return this.progress.isDone() || this.progress.error() !== undefined;
  }

  get readers(): number {
    return this.attached;
  }

  /** A client's own stream of the blob (or a range), following the download; see fill-reader.ts. */
  read(range?: ByteRange): Readable {
    const stream = readFill(this.progress, this.deps.store, range, this.refetch);
    // Counted until the stream closes, whichever way it ends (done, client gone, error).
    this.attached++;
    stream.once('close', () => this.attached--);
    return stream;
  }

  /**
   * Starts the download of `digest`, or adopts the stored file when there is one. Resolves once upstream has
   * answered (undefined for 404); the download then goes on by itself until `settled`.
   */
  static async start(deps: FillDeps, repo: Repository, digest: Digest, shutdown: AbortSignal): Promise<BlobFill | undefined> {
    const { store, upstream, retention, fillTimeoutMs } = deps;
    // An eviction or GC removing this digest right now finishes first, so it cannot undo this download.
    await retention?.settled(digest);
    // The file may have landed between the caller's index lookup and now (a fill that just ended), or be a
    // file whose record a crash lost: adopt it.
    const stored = await store.stat(digest);
    if (stored) return BlobFill.adopt(deps, digest, stored.size);
    const signal = AbortSignal.any([shutdown, AbortSignal.timeout(fillTimeoutMs)]);
    const blob = await upstream.fetchBlob(repo, digest, { signal });
    if (!blob) return undefined;
    const mediaType = blob.mediaType ?? DEFAULT_MEDIA_TYPE;
    const refetch: Refetch = (offset) => upstream.fetchBlob(repo, digest, { offset, signal: AbortSignal.timeout(fillTimeoutMs) });
    const unreserve = (await retention?.reserve(blob.size)) ?? (() => undefined);
    let writer: BlobWriter;
    try {
      // The writer calls back only from writes and commit, which come after `progress` below exists.
      writer = await store.createWriter(digest, blob.size, {
        onProgress: (written) => progress.progress(written),
        onVerified: (size) => progress.verify(size),
      });
    } catch (err) {
      unreserve();
      blob.body.destroy();
      const full = diskFullReason(err);
      if (!full) throw err;
      // Not even a temp file fits: every reader goes straight to upstream.
      const fill = new BlobFill(deps, new FillProgress(digest, blob.size, undefined), mediaType, refetch);
      fill.diskFull(err as Error, full, { length: 0, hash: undefined });
      return fill;
    }
    const progress = new FillProgress(digest, blob.size, writer.spoolPath);
    const fill = new BlobFill(deps, progress, mediaType, refetch);
    deps.metrics.fillsInFlight.inc();
    // Detached from every client: it ends by itself, successfully or not.
    void fill.run(writer, resumingBody(deps, repo, digest, blob, signal), signal).finally(() => {
      unreserve();
      deps.metrics.fillsInFlight.dec();
    });
    return fill;
  }

  /** A stored file (indexed now if a crash lost its record): a download that has already succeeded. */
  private static async adopt(deps: FillDeps, digest: Digest, size: number): Promise<BlobFill> {
    if (!(await deps.index.get(digest))) {
      const now = Date.now();
      await deps.index.put(digest, { size, mediaType: DEFAULT_MEDIA_TYPE, manifest: false, createdAt: now, lastAccessAt: now });
    }
    const progress = new FillProgress(digest, size, undefined);
    progress.succeed(size);
    return new BlobFill(deps, progress, DEFAULT_MEDIA_TYPE, undefined);
  }

  private async run(writer: BlobWriter, body: Readable, signal: AbortSignal): Promise<void> {
    const { index, metrics, log } = this.deps;
    const started = Date.now();
    try {
      await pipeline(body, writer, { signal });
      const info = await writer.commit();
      const now = Date.now();
      await index.put(this.digest, { size: info.size, mediaType: this.mediaType, manifest: false, createdAt: now, lastAccessAt: now });
      metrics.upstreamBytes.inc({ registry: this.deps.upstream.name }, info.size);
      metrics.fills.inc({ registry: this.deps.upstream.name, result: 'ok' });
      this.progress.succeed(info.size);
      log.info({ digest: this.digest, bytes: info.size, ms: now - started }, 'blob cached');
    } catch (err) {
      await writer.abort();
      metrics.upstreamBytes.inc({ registry: this.deps.upstream.name }, writer.bytesWritten);
      const failure = err instanceof Error ? err : new Error(String(err));
      const full = diskFullReason(failure);
      const size = this.size;
      if (failure instanceof DigestMismatchError) {
        metrics.verifyFailures.inc({ reason: failure.reason });
      } else if (size !== undefined && writer.bytesWritten < size && !signal.aborted && !full) {
        metrics.verifyFailures.inc({ reason: 'truncated' });
      }
      metrics.fills.inc({ registry: this.deps.upstream.name, result: 'error' });
      if (full) {
        this.diskFull(failure, full, writer.hashedPrefix() ?? { length: writer.bytesWritten, hash: undefined });
        return;
      }
      this.progress.fail(failure);
      log.error({ err: failure, digest: this.digest, bytes: writer.bytesWritten }, 'blob download failed, nothing cached');
    }
  }

  /** Caching this blob failed for space: counted, logged, eviction started; readers go on from upstream. */
  private diskFull(err: Error, reason: 'enospc' | 'edquot', onDisk: OnDisk): void {
    const { metrics, log, retention } = this.deps;
    metrics.storeWriteFailures.inc({ reason });
    log.warn({ digest: this.digest, reason, written: onDisk.length }, 'disk full: serving this blob without caching it');
    retention?.freeSpace().catch((e: unknown) => log.warn({ err: e }, 'eviction after a full disk failed'));
    this.progress.failDiskFull(err, onDisk);
  }
}
