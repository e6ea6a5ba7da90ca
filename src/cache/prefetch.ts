// Blob prefetch (issue 16): when an image manifest comes from upstream for a client, the downloads of its config
// and layers start at once instead of one client round trip later (the client has to receive the manifest, parse
// it and ask). They go through the shared downloads (fills.ts), so the client's own requests join them: still one
// upstream GET per blob. Bounded: at most `limit` downloads at a time, and none that would push the store past
// the quota's high mark (a prefetch never evicts for content no client asked for yet).
import type { Logger } from 'pino';
import type { BlobIndex } from '../index/blob-index.js';
import { blobsOf, tryParseManifest, type Descriptor } from '../registry/manifest.js';
import type { Digest, Repository } from '../registry/reference.js';
import type { FetchedManifest } from '../upstream/upstream.js';
import type { BlobCache } from './blobs.js';
import type { BlobFills } from './fills.js';
import { Lane } from './lane.js';
import type { Retention } from './retention.js';

export interface BlobPrefetchDeps {
  /** This registry's blob cache: `fetch` joins (or starts) the shared download and records the repository guard. */
  blobs: Pick<BlobCache, 'fetch'>;
  fills: Pick<BlobFills, 'settled'>;
  index: Pick<BlobIndex, 'get'>;
  retention?: Pick<Retention, 'hasRoomFor'> | undefined;
  /** Prefetch downloads at once (cache.prefetchBlobs); 0: none. */
  limit: number;
  log: Logger;
}

/** Layers a registry does not serve (Windows base layers): fetched from their own URLs by clients, if at all. */
function distributable(d: Descriptor): boolean {
  return !(d.mediaType?.includes('foreign') || d.mediaType?.includes('nondistributable'));
}

export class BlobPrefetch {
  /** `limit` downloads at a time: a slot is held until its download ends, so it bounds downloads, not requests. */
  private readonly lane: Lane;
  /** Manifests whose blobs are being prefetched: several clients asking for one manifest start it once. */
  private readonly manifests = new Set<Digest>();

  constructor(private readonly deps: BlobPrefetchDeps) {
    this.lane = new Lane(deps.limit);
  }

  /** Starts, detached, the downloads of what an image manifest names. An index names platforms, not blobs: nothing. */
  start(repo: Repository, manifest: FetchedManifest): void {
    if (this.deps.limit === 0 || this.manifests.has(manifest.digest)) return;
    const parsed = tryParseManifest(manifest.bytes);
    const blobs = parsed ? blobsOf(parsed, false).filter(distributable) : [];
    if (blobs.length === 0) return;
    this.manifests.add(manifest.digest);
    void Promise.all(blobs.map((d) => this.one(repo, d))).finally(() => this.manifests.delete(manifest.digest));
  }

  private one(repo: Repository, d: Descriptor): Promise<void> {
    return this.lane.run(async () => {
      try {
        // Stored already, or its download just ended: nothing to do. One already running is joined below.
        if (await this.deps.index.get(d.digest)) return;
        if (this.deps.retention && !this.deps.retention.hasRoomFor(d.size ?? 0)) {
          this.deps.log.debug({ digest: d.digest, size: d.size }, 'blob not prefetched: the quota has no room');
          return;
        }
        if (!(await this.deps.blobs.fetch(repo, d.digest))) return;
        await this.deps.fills.settled(d.digest);
      } catch (err) {
        // The client's own request starts afresh (a failed download leaves no entry to join) and reports it.
        this.deps.log.debug({ err, digest: d.digest }, 'blob prefetch failed');
      }
    });
  }
}
