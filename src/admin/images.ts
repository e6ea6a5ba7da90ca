// The cached images as people name them: one row per tag and digest, with what it weighs and how it is used.
// `regmirror ls`, the status page and `GET /api/v1/images` all read this one list.
import { readStored, type BlobStore } from '../cache/blob-store.js';
import type { BlobIndex } from '../index/blob-index.js';
import type { PinRecord } from '../index/pin-index.js';
import type { TagIndex } from '../index/tag-index.js';
import { LRUCache } from 'lru-cache';
import { RegistryError } from '../registry/errors.js';
import { walkManifests } from '../registry/manifest-graph.js';
import { DOCKER_HUB, parseImageReference, type Digest } from '../registry/reference.js';

export interface ImageRow {
  /** As docker prints it: Docker Hub's without `docker.io/`, every other registry's with its host. */
  name: string;
  registry: string;
  repository: string;
  tag: string;
  digest: string;
  /** The manifest plus every blob it names, as far as they are cached (a layer two platforms share counts twice). */
  size: number;
  /** ms since epoch; undefined: never pulled by a client (seeded, imported). */
  pulledAt: number | undefined;
  pulls: number;
  /** When upstream last confirmed the tag. */
  checkedAt: number;
  /** By `regmirror pin` (or seed, import), or by the config's `cache.pins`. */
  pinned: boolean;
}

export interface ImageListDeps {
  tags: Pick<TagIndex, 'entries'>;
  index: Pick<BlobIndex, 'peek'> & Partial<Pick<BlobIndex, 'usage'>>;
  store: BlobStore;
  pins: { list(): Promise<PinRecord[]> };
  configPins: readonly string[];
}

/** An image row as the tag records alone give it: everything but the size (no manifest read, no blob record). */
export type ImageEntry = Omit<ImageRow, 'size'>;

export async function listImages(deps: ImageListDeps): Promise<ImageRow[]> {
  const rows: ImageRow[] = [];
  for (const entry of await listImageEntries(deps)) rows.push({ ...entry, size: await imageSize(entry.digest, deps) });
  return rows;
}

/**
 * One scan of the tag records (and the pins): the rows without their sizes. At 100,000 tags this is the cheap
 * part of the list; the sizes (every manifest read, every blob record looked up) are what cost a minute.
 */
export async function listImageEntries(deps: Omit<ImageListDeps, 'index' | 'store'>): Promise<ImageEntry[]> {
  const pinned = new Set((await deps.pins.list()).map((p) => p.ref));
  for (const ref of deps.configPins) pinned.add(parseImageReference(ref).canonical);
  const rows: ImageEntry[] = [];
  const seen = new Set<string>();
  for await (const entry of deps.tags.entries()) {
    const name = `${displayRepository(entry.upstream, entry.repo)}:${entry.tag}`;
    const id = `${name}@${entry.digest}`;
    if (seen.has(id)) continue; // one tag, several accept classes, same digest
    seen.add(id);
    const canonical = `${entry.upstream}/${entry.repo}`;
    rows.push({
      name,
      registry: entry.upstream,
      repository: entry.repo,
      tag: entry.tag,
      digest: entry.digest,
      pulledAt: entry.pulledAt,
      pulls: entry.hits ?? 0,
      checkedAt: entry.checkedAt,
      pinned: pinned.has(`${canonical}:${entry.tag}`) || pinned.has(`${canonical}@${entry.digest}`),
    });
  }
  return rows;
}

export const IMAGE_SORT_KEYS = ['name', 'registry', 'size', 'pulledAt', 'pulls', 'checkedAt', 'pinned'] as const;
export type ImageSortKey = (typeof IMAGE_SORT_KEYS)[number];

export interface ImageQuery {
  /** Case-insensitive substring of the name, the registry or the digest. */
  q: string;
  sort: ImageSortKey;
  order: 'asc' | 'desc';
  limit: number;
}

export interface ImagePage {
  /** Rows before the filter (those the caller may see). */
  total: number;
  /** Rows the filter kept; `images` is the first `limit` of them in the order asked. */
  matched: number;
  images: ImageRow[];
}

/** Sorting by size needs every matched row's size: allowed up to this many (a filter narrows it). */
export const SIZE_SORT_MAX = 2_000;

/**
 * One page of the image list: filtered and sorted over the rows of the tag records, sizes computed for the rows
 * returned only (by `sizes`, memoised by manifest digest). Sorting by size sizes every matched row: at most
 * SIZE_SORT_MAX of them, else BAD_REQUEST.
 */
export async function pageOfImages(entries: readonly ImageEntry[], query: ImageQuery, sizes: ImageSizes): Promise<ImagePage> {
  const needle = query.q.trim().toLowerCase();
  const matched = needle ? entries.filter((e) => `${e.name} ${e.registry} ${e.digest}`.toLowerCase().includes(needle)) : [...entries];
  const dir = query.order === 'asc' ? 1 : -1;
  if (query.sort === 'size') {
    if (matched.length > SIZE_SORT_MAX) {
      throw new RegistryError('BAD_REQUEST', `sorting by size sizes every matching image: narrow the filter to at most ${SIZE_SORT_MAX} (${matched.length} match)`);
    }
    const rows: ImageRow[] = [];
    for (const e of matched) rows.push({ ...e, size: await sizes.of(e.digest) });
    rows.sort((a, b) => compare(a.size, b.size) * dir || compare(a.name, b.name));
    return { total: entries.length, matched: matched.length, images: rows.slice(0, query.limit) };
  }
  const key = query.sort;
  matched.sort((a, b) => compare(a[key], b[key]) * dir || compare(a.name, b.name));
  const images: ImageRow[] = [];
  for (const e of matched.slice(0, query.limit)) images.push({ ...e, size: await sizes.of(e.digest) });
  return { total: entries.length, matched: matched.length, images };
}

/** Never-pulled (undefined) sorts below any time; booleans as 0/1. */
function compare(x: string | number | boolean | undefined, y: string | number | boolean | undefined): number {
  const a = x ?? -Infinity;
  const b = y ?? -Infinity;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Image sizes by manifest digest. A digest's content never changes, but what of it is cached does (blobs added,
 * evicted, collected): a size is reused while the index holds as many records as when it was computed, or for
 * `ttlMs` after that whatever changed. Bounded to `max` digests.
 */
export class ImageSizes {
  private readonly memo: LRUCache<string, { size: number; count: number; at: number }>;

  constructor(
    private readonly deps: Pick<ImageListDeps, 'index' | 'store'>,
    private readonly now: () => number = Date.now,
    private readonly ttlMs = 60_000,
    max = 20_000,
  ) {
    this.memo = new LRUCache({ max });
  }

  async of(digest: string): Promise<number> {
    const count = this.deps.index.usage?.count ?? -1;
    const known = this.memo.get(digest);
    if (known && (known.count === count || this.now() - known.at < this.ttlMs)) return known.size;
    const size = await imageSize(digest, this.deps);
    this.memo.set(digest, { size, count, at: this.now() });
    return size;
  }
}

/** `alpine`, `someuser/app`, `ghcr.io/owner/tool`: what `docker pull` takes and `docker images` prints. */
export function displayRepository(registry: string, repo: string): string {
  if (registry !== DOCKER_HUB) return `${registry}/${repo}`;
  return repo.startsWith('library/') && !repo.slice('library/'.length).includes('/') ? repo.slice('library/'.length) : repo;
}

async function imageSize(digest: string, deps: Pick<ImageListDeps, 'index' | 'store'>): Promise<number> {
  const nodes = await walkManifests([{ digest: digest as Digest }], {
    maxDepth: 2,
    missing: 'skip',
    platformsOptional: true,
    badManifest: 'skip',
    artifactBlobs: true,
    dedupe: false,
    stat: (node) => deps.index.peek(node.digest),
    read: (node) => readStored(deps.store, node.digest),
  });
  return nodes.reduce((total, node) => total + (node.info?.size ?? 0), 0);
}
