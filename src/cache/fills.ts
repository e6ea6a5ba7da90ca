// The in-flight downloads of one cache instance, by digest: however many clients ask for a blob at once, upstream
// sends it once (fill.ts), and every client reads that one download [zot on_demand.go, undici deduplicate.js].
// A digest is in use (in-use.ts) from the first request until its download has settled: retention leaves it alone.
import type { Digest, Repository } from '../registry/reference.js';
import { BlobFill, type FillDeps } from './fill.js';
import type { InUse } from './in-use.js';

/** Where a download comes from: the registry the client asked, with its own fill timeout. */
export type FillSource = Pick<FillDeps, 'upstream' | 'fillTimeoutMs'>;

/** Shared by every registry: a digest is the same bytes whichever registry brings it, so it is fetched once. */
export interface BlobFillsDeps extends Omit<FillDeps, 'upstream' | 'fillTimeoutMs'> {
  inUse: InUse;
}

export interface JoinedFill {
  fill: BlobFill;
  /** False for the request that started the download. */
  coalesced: boolean;
}

/** A download in flight, and the upstream it comes from. */
interface Running {
  from: FillSource['upstream'];
  started: Promise<BlobFill | undefined>;
}

export class BlobFills {
  private readonly inFlight = new Map<Digest, Running>();
  /** Every download not yet settled, those another registry's took the entry from included (for shutdown). */
  private readonly unsettled = new Set<Running>();
  private readonly shutdown = new AbortController();

  constructor(private readonly deps: BlobFillsDeps) {}

  /** Joins the download of a digest, starting one if none runs. Resolves once upstream has answered; undefined for 404. */
  async join(repo: Repository, digest: Digest, from: FillSource): Promise<JoinedFill | undefined> {
    const running = this.inFlight.get(digest);
    if (running?.from === from.upstream) {
      const fill = await running.started;
      return fill ? { fill, coalesced: true } : undefined;
    }
    if (running) {
      // Another registry's download of the same bytes: joined when it has them; its 404 or failure is not ours.
      const fill = await running.started.catch(() => undefined);
      if (fill) return { fill, coalesced: true };
    }
    const log = this.deps.log.child({ registry: from.upstream.name });
    const started = BlobFill.start({ ...this.deps, ...from, log }, repo, digest, this.shutdown.signal);
    this.track(digest, { from: from.upstream, started });
    const fill = await started;
    return fill ? { fill, coalesced: false } : undefined;
  }

  /** Resolves once the download of `digest` (if one runs) has ended, successfully or not. */
  async settled(digest: Digest): Promise<void> {
    const fill = await this.inFlight.get(digest)?.started.catch(() => undefined);
    await fill?.settled;
  }

  /** Aborts every download (shutdown) and resolves once their temp files are removed; nothing half-written is indexed. */
  async abortAll(): Promise<void> {
    this.shutdown.abort();
    await Promise.all([...this.unsettled].map(async (running) => (await running.started.catch(() => undefined))?.settled));
  }

  /**
   * The only place an entry begins and ends: it ends when the download settles, or at once when upstream
   * answered 404 or the start failed before the first byte.
   */
  private track(digest: Digest, running: Running): void {
    this.inFlight.set(digest, running);
    this.unsettled.add(running);
    this.deps.inUse.hold(digest);
    const end = (): void => {
      this.unsettled.delete(running);
      // Another registry's download of this digest may have taken the entry meanwhile: only ours is removed.
      if (this.inFlight.get(digest) === running) this.inFlight.delete(digest);
      this.deps.inUse.release(digest);
    };
    running.started.then((fill) => (fill ? fill.settled.then(end) : end()), end);
  }
}
