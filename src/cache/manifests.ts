// Manifests: by digest they are immutable and served from the store once cached; by tag, upstream is asked
// which digest the tag means now (HEAD, which Docker Hub does not count as a pull) and a GET is spent only
// on a digest we do not have. Bytes are stored exactly as upstream sent them.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { BlobIndex } from '../index/blob-index.js';
import type { TagIndex, TagKey } from '../index/tag-index.js';
import { RegistryError } from '../registry/errors.js';
import type { AcceptClass } from '../registry/media-types.js';
import type { Digest, Repository, Tag } from '../registry/reference.js';
import { UpstreamError } from '../upstream/errors.js';
import type { FetchedManifest, Upstream } from '../upstream/upstream.js';
import type { BlobStore } from './blob-store.js';
import { SingleFlight } from './single-flight.js';

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
  private readonly now: () => number;

  constructor(private readonly deps: ManifestCacheDeps) {
    this.bodies = new LRUCache({
      maxSize: Math.max(1, deps.memoryBytes),
      sizeCalculation: (entry) => Math.max(1, entry.bytes.length),
    });
    this.now = deps.now ?? Date.now;
  }

  async byDigest(repo: Repository, digest: Digest, accept: AcceptClass, withBody: boolean): Promise<ManifestAnswer> {
    const local = await this.local(digest, withBody);
    if (local) return local;
    if (!withBody) {
      const head = await this.deps.upstream.resolveManifest(repo, digest, { accept: accept.header });
      if (!head) throw manifestUnknown(repo, digest);
      return { digest, mediaType: head.mediaType, size: head.size, bytes: undefined, source: 'miss' };
    }
    const { value, shared } = await this.fetches.do(`${digest}`, () => this.fetchAndStore(repo, digest, accept));
    if (!value) throw manifestUnknown(repo, digest);
    return answer(value, shared ? 'coalesced' : 'miss');
  }

  async byTag(repo: Repository, tag: Tag, accept: AcceptClass, withBody: boolean): Promise<ManifestAnswer> {
    const key: TagKey = { upstream: this.deps.upstream.name, repo, tag, acceptKey: accept.key };
    let head;
    try {
      head = await this.deps.upstream.resolveManifest(repo, tag, { accept: accept.header });
    } catch (err) {
      const stale = await this.stale(key, err, withBody);
      if (stale) return stale;
      throw err;
    }
    if (!head) throw manifestUnknown(repo, tag);
    if (head.digest) {
      const local = await this.local(head.digest, withBody);
      if (local) {
        this.checkAccepted(local, accept, repo, tag);
        await this.remember(key, local);
        return local;
      }
      if (!withBody) {
        this.checkAccepted(head, accept, repo, tag);
        return { digest: head.digest, mediaType: head.mediaType, size: head.size, bytes: undefined, source: 'miss' };
      }
    }
    // Fetch by digest when HEAD told one, so the bytes are exactly what HEAD announced even if the tag moves.
    const reference = head.digest ?? tag;
    const { value, shared } = await this.fetches.do(`${reference}#${accept.key}`, () =>
      this.fetchAndStore(repo, reference, accept),
    );
    if (!value) throw manifestUnknown(repo, tag);
    const result = answer(value, shared ? 'coalesced' : 'miss');
    this.checkAccepted(result, accept, repo, tag);
    await this.remember(key, result);
    return result;
  }

  /** A cached manifest by digest, or undefined. Used by /blobs/ too. */
  async local(digest: Digest, withBody: boolean): Promise<ManifestAnswer | undefined> {
    const hot = this.bodies.get(digest);
    if (hot) return { digest, mediaType: hot.mediaType, size: hot.bytes.length, bytes: hot.bytes, source: 'hit' };
    const record = await this.deps.index.get(digest);
    if (!record?.manifest) return undefined;
    if (!withBody) return { digest, mediaType: record.mediaType, size: record.size, bytes: undefined, source: 'hit' };
    const opened = await this.deps.store.open(digest);
    if (!opened) {
      await this.deps.index.delete(digest);
      return undefined;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of opened.read() as AsyncIterable<Buffer>) chunks.push(chunk);
    const bytes = Buffer.concat(chunks);
    this.bodies.set(digest, { mediaType: record.mediaType, bytes });
    return { digest, mediaType: record.mediaType, size: bytes.length, bytes, source: 'hit' };
  }

  private async fetchAndStore(repo: Repository, reference: string, accept: AcceptClass) {
    const fetched = await this.deps.upstream.fetchManifest(repo, reference, { accept: accept.header });
    if (!fetched) return undefined;
    if (!this.bodies.has(fetched.digest) && !(await this.deps.index.get(fetched.digest))?.manifest) {
      await this.store(fetched);
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

  private async remember(key: TagKey, manifest: ManifestAnswer): Promise<void> {
    await this.deps.tags.put({ ...key, digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.size, checkedAt: this.now() });
  }

  /** When upstream cannot answer, a tag we have seen is served as we last saw it. */
  private async stale(key: TagKey, err: unknown, withBody: boolean): Promise<ManifestAnswer | undefined> {
    if (!(err instanceof UpstreamError)) return undefined;
    const entry = await this.deps.tags.get(key);
    if (!entry) return undefined;
    const local = await this.local(entry.digest, withBody);
    if (!local) return undefined;
    this.deps.log.warn({ repo: key.repo, tag: key.tag, digest: entry.digest, err }, 'upstream failed, serving cached tag');
    return { ...local, source: 'stale' };
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

function manifestUnknown(repo: Repository, reference: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { detail: { name: repo, reference } });
}
