// The Upstream interface: what the cache needs from a remote registry. Docker Hub is configuration, not a subclass.
import type { Readable } from 'node:stream';
import type { Digest, Repository } from '../registry/reference.js';

export interface ManifestHead {
  /** Docker-Content-Digest; undefined only when upstream's HEAD did not say (then a GET must tell). */
  digest: Digest | undefined;
  mediaType: string;
  size: number;
}

export interface FetchedManifest {
  digest: Digest;
  mediaType: string;
  /** Exactly the bytes upstream sent, already checked against their digest. */
  bytes: Buffer;
}

export interface UpstreamBlob {
  /** Content-Length of the whole blob (or of the rest when resumed); undefined when upstream did not say. */
  size: number | undefined;
  mediaType: string | undefined;
  /** Must be consumed or destroyed by the caller. */
  body: Readable;
}

export interface TagList {
  body: Buffer;
  /** Pagination Link header, passed through for `n`/`last`. */
  link: string | undefined;
}

export interface ManifestRequest {
  /** Accept header to send, as the client sent it. */
  accept: string | undefined;
  signal?: AbortSignal | undefined;
}

/** Expected absence (404) returns undefined; every other failure throws UpstreamError. */
export interface Upstream {
  /** Keys cached tag records: `docker.io`. */
  readonly name: string;
  /** True when there is no upstream at all (air-gapped): misses answer at once, cached tags never expire. */
  readonly offline?: boolean;
  /** HEAD: tells the current digest without spending a Docker Hub pull. */
  resolveManifest(repo: Repository, reference: string, request: ManifestRequest): Promise<ManifestHead | undefined>;
  /** GET: spends a pull on Docker Hub when reference is a tag or digest of an image manifest. */
  fetchManifest(repo: Repository, reference: string, request: ManifestRequest): Promise<FetchedManifest | undefined>;
  /** HEAD of a blob: its size without downloading it; undefined for 404. */
  statBlob(
    repo: Repository,
    digest: Digest,
    options: { signal?: AbortSignal | undefined },
  ): Promise<{ size: number | undefined; mediaType: string | undefined } | undefined>;
  fetchBlob(
    repo: Repository,
    digest: Digest,
    options: { offset?: number | undefined; signal?: AbortSignal | undefined },
  ): Promise<UpstreamBlob | undefined>;
  listTags(repo: Repository, query: string, options: { signal?: AbortSignal | undefined }): Promise<TagList | undefined>;
  close(): Promise<void>;
}
