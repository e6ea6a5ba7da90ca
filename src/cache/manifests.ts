// Manifests by tag: upstream is asked which digest a tag means now (HEAD, which Docker Hub does not count as a
// pull) once its TTL has passed, and a GET is spent only on a digest we do not have (see manifest-store.ts).
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { BlobIndex } from '../index/blob-index.js';
import { tagKeyString, type TagEntry, type TagIndex, type TagKey } from '../index/tag-index.js';
import type { TagsConfig } from '../config/schema.js';
import type { Metrics } from '../metrics/metrics.js';
import type { RateLimitTracker } from '../upstream/rate-limit.js';
import { RegistryError } from '../registry/errors.js';
import { acceptOnly, ANY_MANIFEST, DOCKER_LIST, isIndexType, MANIFEST_TYPES, OCI_INDEX, type AcceptClass } from '../registry/media-types.js';
import type { Digest, Repository, Tag } from '../registry/reference.js';
import { UpstreamError } from '../upstream/errors.js';
import type { ManifestHead, Upstream } from '../upstream/upstream.js';
import type { BlobStore } from './blob-store.js';
import { ManifestStore, type ManifestAnswer, type ManifestBodies, type ManifestStoreDeps } from './manifest-store.js';
import { DETACHED, type ClientAbort } from './client-abort.js';
import type { RepoGuard } from './repo-guard.js';
import type { PullBudget } from './pull-budget.js';
import { SingleFlight } from './single-flight.js';
import { tagTtlPolicy, type TagTtl } from './tag-policy.js';

export type { ManifestAnswer, ManifestSource } from './manifest-store.js';

export interface ManifestCacheDeps {
  store: BlobStore;
  index: BlobIndex;
  tags: TagIndex;
  upstream: Upstream;
  rateLimit: Pick<RateLimitTracker, 'conserving'>;
  tagsConfig: TagsConfig;
  metrics: Metrics;
  log: Logger;
  memoryBytes: number;
  /** Shared with the other registries' caches (see ManifestStoreDeps). */
  bodies?: ManifestBodies | undefined;
  /** Each client's share of the pulls (see ManifestStoreDeps). */
  budget?: PullBudget | undefined;
  now?: () => number;
  /** See ManifestStoreDeps. */
  guard?: RepoGuard | undefined;
  /** See ManifestStoreDeps. */
  onFetched?: ManifestStoreDeps['onFetched'];
  storing?: ManifestStoreDeps['storing'];
  removals?: ManifestStoreDeps['removals'];
  inUse?: ManifestStoreDeps['inUse'];
}

export interface TagOptions {
  /** Ask upstream (HEAD) whatever the TTL says (`regmirror seed` wants the current image). */
  revalidate?: boolean;
  /** The request, so that a client that hangs up stops work done only for it. */
  client?: ClientAbort;
}

/** Manifests by tag (TTL, HEAD revalidation, stale serving) on top of the content-addressed ManifestStore. */
export class ManifestCache {
  private readonly manifests: ManifestStore;
  private readonly heads = new SingleFlight<string, ManifestHead | undefined>();
  /** Tags upstream answered 404 for, until when (ms), so a typo in a CI job does not hammer upstream. */
  private readonly notFound = new LRUCache<string, number>({ max: 10_000 });
  /** Tags kept under `tags.keepDeleted` after upstream's 404, until when (ms): no HEAD per request meanwhile. */
  private readonly keptUntil = new LRUCache<string, number>({ max: 10_000 });
  private readonly ttl: TagTtl;
  private readonly now: () => number;

  constructor(private readonly deps: ManifestCacheDeps) {
    this.now = deps.now ?? Date.now;
    this.ttl = tagTtlPolicy(deps.tagsConfig);
    this.manifests = new ManifestStore({ ...deps, now: this.now });
  }

  byDigest(repo: Repository, digest: Digest, accept: AcceptClass, withBody: boolean, client: ClientAbort = DETACHED): Promise<ManifestAnswer> {
    return this.manifests.byDigest(repo, digest, accept, withBody, client);
  }

  /** Resolves once every manifest answered before its file was written has been stored (or given up): shutdown. */
  stored(): Promise<void> {
    return this.manifests.stored();
  }

  /** A cached manifest by digest, or undefined. Used by /blobs/ too. */
  local(digest: Digest, withBody: boolean): Promise<ManifestAnswer | undefined> {
    return this.manifests.local(digest, withBody);
  }

  /**
   * A tag within its TTL is answered from cache with no upstream contact. Past it, a HEAD (free on Docker Hub)
   * revalidates, and a GET is spent only when the digest changed. While the pull allowance is at its reserve,
   * or when upstream fails, a cached tag is served as last seen. A tag record may exist without its manifest
   * body (a client resolved it by HEAD and never fetched it here): a HEAD is answered from the record, a GET
   * fetches the body by its digest.
   */
  async byTag(repo: Repository, tag: Tag, accept: AcceptClass, withBody: boolean, options: TagOptions = {}): Promise<ManifestAnswer> {
    const key: TagKey = { upstream: this.deps.upstream.name, repo, tag, acceptKey: accept.key };
    const answer = await this.answerTag({ key, repo, tag, accept, withBody, client: options.client ?? DETACHED }, options.revalidate ?? false);
    // HEAD-first clients (dockerd, containerd) resolve a tag once per pull and never GET it: both count.
    this.deps.tags.touch(key, this.now());
    return answer;
  }

  /**
   * Asks upstream now about every record of a tag (each Accept class it was cached under), as a request past
   * the TTL would, without counting a pull of the tag (the admin API's "revalidate"). Upstream's 404 drops the
   * records (or keeps them under `tags.keepDeleted`); an outage answers as last seen, within `tags.maxStale`.
   */
  async revalidateTag(repo: Repository, tag: Tag): Promise<TagRevalidation[]> {
    if (this.deps.upstream.offline) throw new RegistryError('UNSUPPORTED', 'this mirror is offline: there is no upstream to revalidate against');
    const entries = await this.deps.tags.entriesFor(this.deps.upstream.name, repo, tag);
    const results: TagRevalidation[] = [];
    for (const entry of entries) {
      const key: TagKey = { upstream: entry.upstream, repo, tag, acceptKey: entry.acceptKey };
      this.keptUntil.delete(tagKeyString(key));
      const q: Lookup = { key, repo, tag, accept: acceptOfKey(entry.acceptKey), withBody: false, client: DETACHED };
      const result: TagRevalidation = { acceptKey: entry.acceptKey, before: entry.digest, after: undefined, stale: false };
      try {
        const answer = await this.revalidate(q, entry);
        result.after = answer.digest;
        result.stale = answer.source === 'stale';
      } catch (err) {
        // MANIFEST_UNKNOWN: upstream no longer has the tag, and its record went with it.
        if (!(err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN')) throw err;
      }
      results.push(result);
    }
    return results;
  }

  private async answerTag(q: Lookup, revalidate: boolean): Promise<ManifestAnswer> {
    const id = tagKeyString(q.key);
    if ((this.notFound.get(id) ?? 0) > this.now()) throw this.manifests.unknown(q.repo, q.tag);
    const own = await this.deps.tags.get(q.key);
    const other = own ? undefined : await this.anyAccepted(q);
    const entry = own ?? other?.entry;
    // Air-gapped: what was seeded or imported is the truth, however old, but only while its content is here.
    if (this.deps.upstream.offline) return (entry && (await this.local(entry.digest, q.withBody))) ?? this.resolve(q);
    if (!entry) return this.resolve(q);
    // A narrower record (one platform's manifest, cached for an old client) is no answer to a client that
    // takes an index while upstream can say which index: it is asked, and the record is the outage fallback.
    const mustAsk = revalidate || other?.narrower === true;
    const fresh = this.now() - entry.checkedAt < this.ttl(q.repo, q.tag) || (this.keptUntil.get(id) ?? 0) > this.now();
    if (!mustAsk && fresh) return this.fromEntry(entry, q);
    if (this.deps.rateLimit.conserving()) {
      this.deps.metrics.staleServed.inc({ registry: this.deps.upstream.name, reason: 'ratelimit' });
      const answer = await this.fromEntry(entry, q);
      // A body fetched by digest was a pull spent upstream: it stays a miss (pulls spared, hit ratio).
      return answer.source === 'miss' ? answer : { ...answer, source: 'stale' };
    }
    if (this.deps.tagsConfig.staleWhileRevalidate && !mustAsk) {
      // Detached from the client: it has its answer, and the check (new body included) is the cache's own work.
      this.revalidate({ ...q, withBody: true, client: DETACHED }, entry).catch((err: unknown) => {
        this.deps.log.warn({ err, repo: q.repo, tag: q.tag }, 'background tag revalidation failed');
      });
      return this.fromEntry(entry, q);
    }
    return this.revalidate(q, entry);
  }

  /** What a tag record says: from the store when the manifest is here, else the record (HEAD) or a GET by digest. */
  private async fromEntry(entry: TagEntry, q: Lookup): Promise<ManifestAnswer> {
    const local = await this.local(entry.digest, q.withBody);
    if (local) return local;
    if (!q.withBody) return { digest: entry.digest, mediaType: entry.mediaType, size: entry.size, bytes: undefined, source: 'hit' };
    // The same content-addressed manifest the tag resolved to, whichever client asks.
    return this.manifests.fetch(q.repo, entry.digest, acceptOnly(entry.mediaType), q.client);
  }

  private async revalidate(q: Lookup, entry: TagEntry): Promise<ManifestAnswer> {
    const { metrics, log, tagsConfig } = this.deps;
    let head: ManifestHead | undefined;
    try {
      head = await this.head(q);
    } catch (err) {
      metrics.tagRevalidations.inc({ registry: this.deps.upstream.name, result: 'error' });
      const age = this.now() - entry.checkedAt;
      if (!(err instanceof UpstreamError) || age > tagsConfig.maxStale) throw err;
      // A GET of a tag whose body never reached us still needs upstream: then the outage is the answer.
      const stale = await this.fromEntry(entry, q).catch(() => {
        throw err;
      });
      metrics.staleServed.inc({ registry: this.deps.upstream.name, reason: 'error' });
      log.warn({ err, repo: q.repo, tag: q.tag, digest: entry.digest, ageMs: age }, 'upstream failed, serving cached tag');
      return { ...stale, source: 'stale' };
    }
    if (!head) return this.deleted(q, entry);
    if (head.digest === entry.digest) {
      metrics.tagRevalidations.inc({ registry: this.deps.upstream.name, result: 'unchanged' });
      await this.record({ ...entry, checkedAt: this.now() });
      return this.fromEntry(entry, q);
    }
    metrics.tagRevalidations.inc({ registry: this.deps.upstream.name, result: 'changed' });
    // A HEAD records the new digest without its body: no pull is spent for a client (a poller) that only asks.
    return this.fromHead(q, head, entry);
  }

  /**
   * Upstream answers 404 for a tag we hold. By default that is the truth: the tag's records go (its content is
   * left to GC). `tags.keepDeleted` serves the last known digest instead, for sites that prefer an old image to
   * a failed pull.
   */
  private async deleted(q: Lookup, entry: TagEntry): Promise<ManifestAnswer> {
    const { metrics, log, tagsConfig } = this.deps;
    metrics.tagRevalidations.inc({ registry: this.deps.upstream.name, result: 'deleted' });
    if (tagsConfig.keepDeleted) {
      const kept = await this.fromEntry(entry, q);
      metrics.staleServed.inc({ registry: this.deps.upstream.name, reason: 'deleted' });
      log.warn({ repo: q.repo, tag: q.tag, digest: entry.digest }, 'upstream deleted the tag, serving the last known digest');
      // Asked again when the TTL has run out once more; checkedAt still says when upstream last had the tag.
      this.keptUntil.set(tagKeyString(q.key), this.now() + this.ttl(q.repo, q.tag));
      return { ...kept, source: 'stale' };
    }
    await this.deps.tags.deleteTag(q.key.upstream, q.repo, q.tag).catch((err: unknown) => {
      // A full disk: the 404 stands, and the record is dropped when upstream is asked again.
      log.warn({ err, repo: q.repo, tag: q.tag }, 'tag record not removed');
    });
    return this.notFoundUpstream(q);
  }

  /**
   * A tag we hold nothing for. A client that wants its body gets it with one GET by tag: a HEAD first would cost a
   * round trip on every cold pull (issue 16) to spare a pull only when the digest is already here under another
   * name. While the pull allowance is at its reserve that spare counts, and a HEAD goes first; a HEAD from the
   * client is answered by a HEAD upstream, which spends nothing.
   */
  private async resolve(q: Lookup): Promise<ManifestAnswer> {
    if (q.withBody && !this.deps.upstream.offline && !this.deps.rateLimit.conserving()) return this.fetchTag(q);
    const head = await this.head(q);
    return head ? this.fromHead(q, head) : this.notFoundUpstream(q);
  }

  /** GET by tag, verified against the digest upstream announces with it (upstream/client.ts), then recorded. */
  private async fetchTag(q: Lookup): Promise<ManifestAnswer> {
    let result: ManifestAnswer;
    try {
      result = await this.manifests.fetch(q.repo, q.tag, q.accept, q.client);
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN') this.notFoundUpstream(q);
      throw err;
    }
    this.checkAccepted(result, q);
    await this.remember(q.key, result);
    return result;
  }

  private notFoundUpstream(q: Lookup): never {
    this.notFound.set(tagKeyString(q.key), this.now() + this.deps.tagsConfig.notFoundTtl);
    throw this.manifests.unknown(q.repo, q.tag);
  }

  /** One upstream HEAD per tag and accept class at a time, however many clients ask. */
  private async head(q: Lookup): Promise<ManifestHead | undefined> {
    const { value } = await this.heads.do(
      tagKeyString(q.key),
      (signal) => this.deps.upstream.resolveManifest(q.repo, q.tag, { accept: q.accept.header, signal }),
      q.client.signal,
    );
    return value;
  }

  /** `prior`: the record the tag had, whose pull counts carry over to the new digest. */
  private async fromHead(q: Lookup, head: ManifestHead, prior?: TagEntry): Promise<ManifestAnswer> {
    if (head.digest) {
      const local = await this.local(head.digest, q.withBody);
      if (local) {
        this.checkAccepted(local, q);
        await this.remember(q.key, local, prior);
        return local;
      }
      // Recorded as a GET would be, so the tag survives an outage for clients that resolve by HEAD (dockerd,
      // containerd); the body comes when the client asks for it by digest, or with the next GET by tag. A HEAD
      // without a media type or length is not worth recording: the GET below tells them.
      if (!q.withBody && head.mediaType !== '' && head.size > 0) {
        this.checkAccepted(head, q);
        const answer: ManifestAnswer = { digest: head.digest, mediaType: head.mediaType, size: head.size, bytes: undefined, source: 'miss' };
        await this.remember(q.key, answer, prior);
        return answer;
      }
    }
    // Fetch by digest when HEAD told one, so the bytes are exactly what HEAD announced even if the tag moves.
    const result = await this.manifests.fetch(q.repo, head.digest ?? q.tag, q.accept, q.client);
    this.checkAccepted(result, q);
    await this.remember(q.key, result, prior);
    return result;
  }

  /**
   * A tag cached (or imported, or seeded) under another Accept answers a client that accepts its media type:
   * an air-gapped mirror has no upstream to ask how it would answer this client, and an online one still
   * revalidates it past its TTL as usual.
   */
  private async anyAccepted(q: Lookup): Promise<{ entry: TagEntry; narrower: boolean } | undefined> {
    const accepted = (await this.deps.tags.entriesFor(q.key.upstream, q.repo, q.tag)).filter((e) => q.accept.accepts(e.mediaType));
    const best = accepted.find((e) => isIndexType(e.mediaType)) ?? accepted[0];
    if (!best) return undefined;
    // Its pull counts stay with the record they were counted for.
    const { hits: _hits, pulledAt: _pulledAt, ...rest } = best;
    const entry = { ...rest, acceptKey: q.key.acceptKey };
    const narrower = !isIndexType(best.mediaType) && acceptsAnIndex(q.accept);
    // Recorded under this client's class too (same digest and age), so its next request is a plain lookup;
    // offline, even a narrower record is all there will ever be.
    if (!narrower || this.deps.upstream.offline) await this.record(entry);
    return { entry, narrower };
  }

  private remember(key: TagKey, manifest: Pick<ManifestAnswer, 'digest' | 'mediaType' | 'size'>, prior?: TagEntry): Promise<void> {
    const { digest, mediaType, size } = manifest;
    const counts = prior?.hits === undefined ? {} : { hits: prior.hits, pulledAt: prior.pulledAt };
    return this.record({ ...key, digest, mediaType, size, checkedAt: this.now(), ...counts });
  }

  private async record(entry: TagEntry): Promise<void> {
    try {
      await this.deps.tags.put(entry);
    } catch (err) {
      // The index could not take the record (a full disk): the answer stands, the tag is asked again next time.
      this.deps.log.warn({ err, repo: entry.repo, tag: entry.tag }, 'tag record not saved');
    }
  }

  /** A client that did not ask for a type (an index, say) is never handed one. */
  private checkAccepted(manifest: { mediaType: string }, q: Lookup): void {
    if (!q.accept.accepts(manifest.mediaType)) {
      throw new RegistryError('MANIFEST_UNKNOWN', 'manifest not available in an accepted media type', {
        detail: { name: q.repo, reference: q.tag, mediaType: manifest.mediaType },
      });
    }
  }
}

/** One record's outcome: the digest before and after (undefined: upstream deleted the tag). */
export interface TagRevalidation {
  acceptKey: string;
  before: Digest;
  after: Digest | undefined;
  /** Upstream could not answer: the record stands as last seen. */
  stale: boolean;
}

/** The Accept class a record was keyed by, back from its key (MANIFEST_TYPES indices, or '*'). */
function acceptOfKey(key: string): AcceptClass {
  if (key === '*' || key === 'none') return ANY_MANIFEST;
  const types = [...key].map((i) => MANIFEST_TYPES[Number(i)]).filter((t) => t !== undefined);
  return types.length > 0 ? acceptOnly(types.join(', ')) : ANY_MANIFEST;
}

function acceptsAnIndex(accept: AcceptClass): boolean {
  return accept.accepts(OCI_INDEX) || accept.accepts(DOCKER_LIST);
}

/** One client's question about a tag. */
interface Lookup {
  key: TagKey;
  repo: Repository;
  tag: Tag;
  accept: AcceptClass;
  withBody: boolean;
  client: ClientAbort;
}
