// Manifests: by digest they are immutable and served from the store once cached; by tag, upstream is asked
// which digest the tag means now (HEAD, which Docker Hub does not count as a pull) and a GET is spent only
// on a digest we do not have. Bytes are stored exactly as upstream sent them.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { BlobIndex } from '../index/blob-index.js';
import { tagKeyString, type TagEntry, type TagIndex, type TagKey } from '../index/tag-index.js';
import type { TagsConfig } from '../config/schema.js';
import type { Metrics } from '../metrics/metrics.js';
import type { RateLimitTracker } from '../upstream/rate-limit.js';
import { RegistryError } from '../registry/errors.js';
import { acceptClass, type AcceptClass } from '../registry/media-types.js';
import type { Digest, Repository, Tag } from '../registry/reference.js';
import { UpstreamError } from '../upstream/errors.js';
import type { FetchedManifest, ManifestHead, Upstream } from '../upstream/upstream.js';
import { OFFLINE_NOTE } from '../upstream/offline.js';
import { diskFullReason, readWhole, type BlobStore } from './blob-store.js';
import { SingleFlight } from './single-flight.js';
import { tagTtlPolicy, type TagTtl } from './tag-policy.js';

export type ManifestSource = 'hit' | 'miss' | 'coalesced' | 'stale';

export interface ManifestAnswer {
  digest: Digest;
  mediaType: string;
  size: number;
  /** Present for GET; a HEAD is answered from metadata alone. */
  bytes: Buffer | undefined;
  source: ManifestSource;
}

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
  now?: () => number;
}

interface LocalManifest {
  mediaType: string;
  bytes: Buffer;
}

export class ManifestCache {
  private readonly bodies: LRUCache<string, LocalManifest>;
  private readonly fetches = new SingleFlight<string, FetchedManifest | undefined>();
  private readonly heads = new SingleFlight<string, ManifestHead | undefined>();
  /** Tags upstream answered 404 for, until when (ms), so a typo in a CI job does not hammer upstream. */
  private readonly notFound = new LRUCache<string, number>({ max: 10_000 });
  private readonly ttl: TagTtl;
  private readonly now: () => number;

  constructor(private readonly deps: ManifestCacheDeps) {
    this.bodies = new LRUCache({
      maxSize: Math.max(1, deps.memoryBytes),
      sizeCalculation: (entry) => Math.max(1, entry.bytes.length),
    });
    this.now = deps.now ?? Date.now;
    this.ttl = tagTtlPolicy(deps.tagsConfig);
  }

  async byDigest(repo: Repository, digest: Digest, accept: AcceptClass, withBody: boolean): Promise<ManifestAnswer> {
    const local = await this.local(digest, withBody);
    if (local) return local;
    if (!withBody) {
      const head = await this.deps.upstream.resolveManifest(repo, digest, { accept: accept.header });
      if (!head) throw this.unknown(repo, digest);
      return { digest, mediaType: head.mediaType, size: head.size, bytes: undefined, source: 'miss' };
    }
    const { value, shared } = await this.fetches.do(`${digest}`, () => this.fetchAndStore(repo, digest, accept));
    if (!value) throw this.unknown(repo, digest);
    return answer(value, shared ? 'coalesced' : 'miss');
  }

  /**
   * A tag within its TTL is answered from cache with no upstream contact. Past it, a HEAD (free on Docker Hub)
   * revalidates, and a GET is spent only when the digest changed. While the pull allowance is at its reserve,
   * or when upstream fails, a cached tag is served as last seen. A tag record may exist without its manifest
   * body (a client resolved it by HEAD and never fetched it here): a HEAD is answered from the record, a GET
   * fetches the body by its digest.
   */
  async byTag(repo: Repository, tag: Tag, accept: AcceptClass, withBody: boolean, options: { revalidate?: boolean } = {}): Promise<ManifestAnswer> {
    const key: TagKey = { upstream: this.deps.upstream.name, repo, tag, acceptKey: accept.key };
    const answer = await this.answerTag(key, accept, withBody, options.revalidate ?? false);
    // HEAD-first clients (dockerd, containerd) resolve a tag once per pull and never GET it: both count.
    this.deps.tags.touch(key, this.now());
    return answer;
  }

  /** `revalidate`: ask upstream (HEAD) whatever the TTL says (`regmirror seed` wants the current image). */
  private async answerTag(key: TagKey, accept: AcceptClass, withBody: boolean, revalidate: boolean): Promise<ManifestAnswer> {
    const { repo, tag } = key as TagKey & { repo: Repository; tag: Tag };
    if ((this.notFound.get(tagKeyString(key)) ?? 0) > this.now()) throw this.unknown(repo, tag);
    const entry = (await this.deps.tags.get(key)) ?? (await this.anyAccepted(key, accept));
    // Air-gapped: what was seeded or imported is the truth, however old, but only while its content is here.
    if (this.deps.upstream.offline) return (entry && (await this.local(entry.digest, withBody))) ?? this.resolve(key, accept, withBody);
    if (!entry) return this.resolve(key, accept, withBody);
    if (!revalidate && this.now() - entry.checkedAt < this.ttl(repo, tag)) return this.fromEntry(entry, withBody);
    if (this.deps.rateLimit.conserving()) {
      this.deps.metrics.staleServed.inc({ reason: 'ratelimit' });
      return this.fromEntry(entry, withBody);
    }
    if (this.deps.tagsConfig.staleWhileRevalidate && !revalidate) {
      this.revalidate(key, entry, accept, false).catch((err: unknown) => {
        this.deps.log.warn({ err, repo, tag }, 'background tag revalidation failed');
      });
      return this.fromEntry(entry, withBody);
    }
    return this.revalidate(key, entry, accept, withBody);
  }

  /** What a tag record says: from the store when the manifest is here, else the record (HEAD) or a GET by digest. */
  private async fromEntry(entry: TagEntry, withBody: boolean): Promise<ManifestAnswer> {
    const local = await this.local(entry.digest, withBody);
    if (local) return local;
    if (!withBody) return { digest: entry.digest, mediaType: entry.mediaType, size: entry.size, bytes: undefined, source: 'hit' };
    // The same content-addressed manifest the tag resolved to, whichever client asks.
    return this.byDigest(entry.repo as Repository, entry.digest, acceptClass(entry.mediaType), true);
  }

  private async revalidate(key: TagKey, entry: TagEntry, accept: AcceptClass, withBody: boolean): Promise<ManifestAnswer> {
    const { metrics, log, tagsConfig } = this.deps;
    const { repo, tag } = key as TagKey & { repo: Repository; tag: Tag };
    let head: ManifestHead | undefined;
    try {
      head = await this.head(key, accept);
    } catch (err) {
      metrics.tagRevalidations.inc({ result: 'error' });
      const age = this.now() - entry.checkedAt;
      if (!(err instanceof UpstreamError) || age > tagsConfig.maxStale) throw err;
      // A GET of a tag whose body never reached us still needs upstream: then the outage is the answer.
      const stale = await this.fromEntry(entry, withBody).catch(() => {
        throw err;
      });
      metrics.staleServed.inc({ reason: 'error' });
      log.warn({ upstreamError: err.message, repo, tag, digest: entry.digest, ageMs: age }, 'upstream failed, serving cached tag');
      return { ...stale, source: 'stale' };
    }
    if (!head) return this.deleted(key, entry, withBody);
    if (head.digest === entry.digest) {
      metrics.tagRevalidations.inc({ result: 'unchanged' });
      await this.record({ ...entry, checkedAt: this.now() });
      return this.fromEntry(entry, withBody);
    }
    metrics.tagRevalidations.inc({ result: 'changed' });
    return this.fromHead(key, head, accept, withBody);
  }

  /**
   * Upstream answers 404 for a tag we hold. By default that is the truth: the tag's records go (its content is
   * left to GC). `tags.keepDeleted` serves the last known digest instead, for sites that prefer an old image to
   * a failed pull.
   */
  private async deleted(key: TagKey, entry: TagEntry, withBody: boolean): Promise<ManifestAnswer> {
    const { metrics, log, tagsConfig } = this.deps;
    metrics.tagRevalidations.inc({ result: 'deleted' });
    if (tagsConfig.keepDeleted) {
      const kept = await this.fromEntry(entry, withBody);
      metrics.staleServed.inc({ reason: 'deleted' });
      log.warn({ repo: key.repo, tag: key.tag, digest: entry.digest }, 'upstream deleted the tag, serving the last known digest');
      // Confirmed as "deleted upstream, kept" until the TTL runs out again: no HEAD per request meanwhile.
      await this.record({ ...entry, checkedAt: this.now() });
      return { ...kept, source: 'stale' };
    }
    await this.deps.tags.deleteTag(key.upstream, key.repo, key.tag);
    this.notFound.set(tagKeyString(key), this.now() + tagsConfig.notFoundTtl);
    throw this.unknown(key.repo as Repository, key.tag);
  }

  /** A tag we hold nothing for: HEAD first, since its digest may already be cached under another name. */
  private async resolve(key: TagKey, accept: AcceptClass, withBody: boolean): Promise<ManifestAnswer> {
    const head = await this.head(key, accept);
    if (!head) {
      this.notFound.set(tagKeyString(key), this.now() + this.deps.tagsConfig.notFoundTtl);
      throw this.unknown(key.repo as Repository, key.tag);
    }
    return this.fromHead(key, head, accept, withBody);
  }

  /** One upstream HEAD per tag and accept class at a time, however many clients ask. */
  private async head(key: TagKey, accept: AcceptClass): Promise<ManifestHead | undefined> {
    const { value } = await this.heads.do(tagKeyString(key), () =>
      this.deps.upstream.resolveManifest(key.repo as Repository, key.tag, { accept: accept.header }),
    );
    return value;
  }

  private async fromHead(key: TagKey, head: ManifestHead, accept: AcceptClass, withBody: boolean): Promise<ManifestAnswer> {
    const repo = key.repo as Repository;
    if (head.digest) {
      const local = await this.local(head.digest, withBody);
      if (local) {
        this.checkAccepted(local, accept, repo, key.tag);
        await this.remember(key, local);
        return local;
      }
      if (!withBody) {
        // Recorded as a GET would be, so the tag survives an outage for clients that resolve by HEAD (dockerd,
        // containerd); the body comes when the client asks for it by digest, or with the next GET by tag.
        this.checkAccepted(head, accept, repo, key.tag);
        const answer: ManifestAnswer = { digest: head.digest, mediaType: head.mediaType, size: head.size, bytes: undefined, source: 'miss' };
        await this.remember(key, answer);
        return answer;
      }
    }
    // Fetch by digest when HEAD told one, so the bytes are exactly what HEAD announced even if the tag moves.
    const reference = head.digest ?? key.tag;
    const { value, shared } = await this.fetches.do(`${reference}#${accept.key}`, () =>
      this.fetchAndStore(repo, reference, accept),
    );
    if (!value) throw this.unknown(repo, key.tag);
    const result = answer(value, shared ? 'coalesced' : 'miss');
    this.checkAccepted(result, accept, repo, key.tag);
    await this.remember(key, result);
    return result;
  }

  /** A cached manifest by digest, or undefined. Used by /blobs/ too. */
  async local(digest: Digest, withBody: boolean): Promise<ManifestAnswer | undefined> {
    const hot = this.bodies.get(digest);
    if (hot) {
      this.deps.index.touch(digest, this.now());
      return { digest, mediaType: hot.mediaType, size: hot.bytes.length, bytes: hot.bytes, source: 'hit' };
    }
    const record = await this.deps.index.get(digest);
    if (!record?.manifest) return undefined;
    this.deps.index.touch(digest, this.now());
    if (!withBody) return { digest, mediaType: record.mediaType, size: record.size, bytes: undefined, source: 'hit' };
    const opened = await this.deps.store.open(digest);
    if (!opened) {
      await this.deps.index.delete(digest);
      return undefined;
    }
    const bytes = await readWhole(opened);
    this.bodies.set(digest, { mediaType: record.mediaType, bytes });
    return { digest, mediaType: record.mediaType, size: bytes.length, bytes, source: 'hit' };
  }

  private async fetchAndStore(repo: Repository, reference: string, accept: AcceptClass) {
    const fetched = await this.deps.upstream.fetchManifest(repo, reference, { accept: accept.header });
    if (!fetched) return undefined;
    if (!this.bodies.has(fetched.digest) && !(await this.deps.index.get(fetched.digest))?.manifest) {
      await this.store(fetched).catch((err: unknown) => {
        // A full disk costs the cache, not the client: the manifest is answered from memory.
        const reason = diskFullReason(err);
        if (!reason) throw err;
        this.deps.metrics.storeWriteFailures.inc({ reason });
        this.deps.log.warn({ digest: fetched.digest, reason }, 'disk full: manifest served without caching it');
      });
    }
    return fetched;
  }

  private async store(manifest: FetchedManifest): Promise<void> {
    const writer = await this.deps.store.createWriter(manifest.digest, manifest.bytes.length);
    try {
      await pipeline(Readable.from([manifest.bytes]), writer);
      const info = await writer.commit();
      const now = this.now();
      await this.deps.index.put(manifest.digest, {
        size: info.size,
        mediaType: manifest.mediaType,
        manifest: true,
        createdAt: now,
        lastAccessAt: now,
      });
      this.bodies.set(manifest.digest, { mediaType: manifest.mediaType, bytes: manifest.bytes });
    } finally {
      await writer.abort();
    }
  }

  /**
   * A tag cached (or imported, or seeded) under another Accept answers a client that accepts its media type:
   * an air-gapped mirror has no upstream to ask how it would answer this client, and an online one still
   * revalidates it past its TTL as usual.
   */
  private async anyAccepted(key: TagKey, accept: AcceptClass): Promise<TagEntry | undefined> {
    const entries = await this.deps.tags.entriesFor(key.upstream, key.repo, key.tag);
    const found = entries.find((e) => accept.accepts(e.mediaType));
    // Recorded under this client's class too (same digest and age), so its next request is a plain lookup.
    if (found) await this.deps.tags.put({ ...found, acceptKey: key.acceptKey }).catch(() => undefined);
    return found;
  }

  private unknown(repo: Repository, reference: string): RegistryError {
    return manifestUnknown(repo, reference, this.deps.upstream.offline);
  }

  private remember(key: TagKey, manifest: Pick<ManifestAnswer, 'digest' | 'mediaType' | 'size'>): Promise<void> {
    const { digest, mediaType, size } = manifest;
    return this.record({ ...key, digest, mediaType, size, checkedAt: this.now() });
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
  private checkAccepted(manifest: { mediaType: string }, accept: AcceptClass, repo: Repository, reference: string): void {
    if (!accept.accepts(manifest.mediaType)) {
      throw new RegistryError('MANIFEST_UNKNOWN', 'manifest not available in an accepted media type', {
        detail: { name: repo, reference, mediaType: manifest.mediaType },
      });
    }
  }
}

function answer(manifest: FetchedManifest, source: ManifestSource): ManifestAnswer {
  const { digest, mediaType, bytes } = manifest;
  return { digest, mediaType, size: bytes.length, bytes, source };
}

function manifestUnknown(repo: Repository, reference: string, offline = false): RegistryError {
  const message = offline ? `manifest unknown: ${OFFLINE_NOTE}` : 'manifest unknown';
  return new RegistryError('MANIFEST_UNKNOWN', message, { detail: { name: repo, reference } });
}
