// The cached images as people name them: one row per tag and digest, with what it weighs and how it is used.
// `regmirror ls`, the status page and `GET /api/v1/images` all read this one list.
import { readStored, type BlobStore } from '../cache/blob-store.js';
import type { BlobIndex } from '../index/blob-index.js';
import type { PinRecord } from '../index/pin-index.js';
import type { TagEntry, TagIndex } from '../index/tag-index.js';
import { walkManifests } from '../registry/manifest-graph.js';
import { DOCKER_HUB, parseImageReference } from '../registry/reference.js';

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
  index: Pick<BlobIndex, 'peek'>;
  store: BlobStore;
  pins: { list(): Promise<PinRecord[]> };
  configPins: readonly string[];
}

export async function listImages(deps: ImageListDeps): Promise<ImageRow[]> {
  const pinned = new Set((await deps.pins.list()).map((p) => p.ref));
  for (const ref of deps.configPins) pinned.add(parseImageReference(ref).canonical);
  const rows: ImageRow[] = [];
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
      size: await imageSize(entry, deps),
      pulledAt: entry.pulledAt,
      pulls: entry.hits ?? 0,
      checkedAt: entry.checkedAt,
      pinned: pinned.has(`${canonical}:${entry.tag}`) || pinned.has(`${canonical}@${entry.digest}`),
    });
  }
  return rows;
}

/** `alpine`, `someuser/app`, `ghcr.io/owner/tool`: what `docker pull` takes and `docker images` prints. */
export function displayRepository(registry: string, repo: string): string {
  if (registry !== DOCKER_HUB) return `${registry}/${repo}`;
  return repo.startsWith('library/') && !repo.slice('library/'.length).includes('/') ? repo.slice('library/'.length) : repo;
}

async function imageSize(entry: TagEntry, deps: ImageListDeps): Promise<number> {
  const nodes = await walkManifests([{ digest: entry.digest }], {
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
