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
  repo: Repository;
  /** ms since epoch, for the rate the status page shows. */
  startedAt: number;
  started: Promise<BlobFill | undefined>;
  /** Set once upstream has answered: from then on the download has a size and a progress to show. */
  fill?: BlobFill | undefined;
}

/** One download as the status page shows it (read-only, a copy taken when asked). */
export interface DownloadStatus {
  digest: Digest;
  repository: Repository;
  registry: string;
  startedAt: number;
  /** Bytes on disk so far. */
  written: number;
  /** As upstream announced it; undefined when it did not. */
  size: number | undefined;
  /** Client reads following this download now. */
  readers: number;
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
    this.track(digest, { from: from.upstream, repo, startedAt: Date.now(), started });
    const fill = await started;
    return fill ? { fill, coalesced: false } : undefined;
  }

  /**
   * The downloads under way, for the status page: a copy of each one's progress now. Those still waiting for
   * upstream's first answer are left out (nothing to show yet), as are stored files adopted without a download.
   */
  downloads(): DownloadStatus[] {
    const list: DownloadStatus[] = [];
    for (const [digest, running] of this.inFlight) {
      const fill = running.fill;
      if (!fill || fill.finished) continue;
      list.push({
        digest,
        repository: running.repo,
        registry: running.from.name,
        startedAt: running.startedAt,
        written: fill.written,
        size: fill.size,
        readers: fill.readers,
      });
    }
    return list;
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
    running.started.then((fill) => {
      running.fill = fill;
      return fill ? fill.settled.then(end) : end();
    }, end);
  }
}
