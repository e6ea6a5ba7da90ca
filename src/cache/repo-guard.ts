// One registry's rule for content by digest when it is pulled with credentials (issue 14, finding 3): the store
// is shared by digest, but a digest is served for a repository only once that repository is known to hold it —
// it came in for that repository, or upstream confirmed it with a HEAD for that repository (free on Docker Hub).
// Without credentials there is no guard: what an anonymous pull can fetch is public, and digest-only sharing is
// what makes cross-repository dedupe work.
import type { Logger } from 'pino';
import type { RepoBlobIndex } from '../index/repo-blob-index.js';
import { ANY_MANIFEST } from '../registry/media-types.js';
import type { Digest, Repository } from '../registry/reference.js';
import type { Upstream } from '../upstream/upstream.js';
import { DETACHED, type ClientAbort } from './client-abort.js';

export interface RepoGuardDeps {
  index: RepoBlobIndex;
  /** This registry's upstream, pulling with its credentials. */
  upstream: Upstream;
  log: Logger;
}

/** Which endpoint the client asked: upstream is asked that one first (a manifest digest is 404 on /blobs/). */
export type ContentKind = 'blob' | 'manifest';

export class RepoGuard {
  constructor(private readonly deps: RepoGuardDeps) {}

  /**
   * True when `repo` holds `digest`: recorded, or confirmed now by upstream (HEAD of the blob, then of the
   * manifest, for this repository). Upstream failures throw: unconfirmed content is never served.
   */
  async holds(repo: Repository, digest: Digest, kind: ContentKind, client: ClientAbort = DETACHED): Promise<boolean> {
    const { index, upstream } = this.deps;
    if (await index.has(upstream.name, repo, digest)) return true;
    // Read only now: a recorded answer needs no signal (and making one costs a listener per request).
    const { signal } = client;
    const blob = () => upstream.statBlob(repo, digest, { signal });
    const manifest = () => upstream.resolveManifest(repo, digest, { accept: ANY_MANIFEST.header, signal });
    const held = kind === 'blob' ? ((await blob()) ?? (await manifest())) : ((await manifest()) ?? (await blob()));
    if (!held) return false;
    await this.record(repo, digest);
    return true;
  }

  /** Content that came from upstream for `repo`. A lost record costs one HEAD later, never a wrong answer. */
  async record(repo: Repository, digest: Digest): Promise<void> {
    await this.deps.index.add(this.deps.upstream.name, repo, digest).catch((err: unknown) => {
      this.deps.log.warn({ err, repo, digest }, 'repository content record not saved');
    });
  }
}
