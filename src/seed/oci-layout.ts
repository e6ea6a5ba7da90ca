// The OCI image layout (image-spec "image-layout"): what a bundle holds, and how to find the images in a cache.
//
//   oci-layout            {"imageLayoutVersion":"1.0.0"}
//   index.json            one entry per image, annotated with its full reference
//   blobs/sha256/<hex>    manifests, configs and layers
import type { CacheCore } from '../app.js';
import type { TagEntry } from '../index/tag-index.js';
import { DOCKER_LIST, OCI_INDEX } from '../registry/media-types.js';
import { manifestRefs } from '../registry/manifest-refs.js';
import { parseImageReference, type Digest } from '../registry/reference.js';
import { readWhole } from '../cache/blob-store.js';

export const REF_NAME = 'org.opencontainers.image.ref.name';
export const OCI_LAYOUT = JSON.stringify({ imageLayoutVersion: '1.0.0' });

export interface IndexEntry {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
}

export interface LayoutIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: IndexEntry[];
}

/** An image to export: its full reference and top manifest. */
export interface ExportRoot {
  ref: string;
  digest: Digest;
  mediaType: string;
  size: number;
}

/** The tag record to export for repo:tag: the index when the tag was cached as one, else any. */
function bestEntry(entries: TagEntry[]): TagEntry | undefined {
  return entries.find((e) => e.mediaType === OCI_INDEX || e.mediaType === DOCKER_LIST) ?? entries[0];
}

/** Images named by reference (tag or digest), as cached. Throws for one that is not cached. */
export async function rootsFor(core: CacheCore, refs: readonly string[]): Promise<ExportRoot[]> {
  const byTag = new Map<string, TagEntry[]>();
  for await (const entry of core.tags.entries()) {
    const key = `${entry.upstream}/${entry.repo}:${entry.tag}`;
    byTag.set(key, [...(byTag.get(key) ?? []), entry]);
  }
  const roots: ExportRoot[] = [];
  for (const text of refs) {
    const ref = parseImageReference(text);
    if (ref.digest) {
      const record = await core.index.get(ref.digest);
      if (!record?.manifest) throw new Error(`${ref.canonical} is not cached`);
      roots.push({ ref: ref.canonical, digest: ref.digest, mediaType: record.mediaType, size: record.size });
      continue;
    }
    const entry = bestEntry(byTag.get(`${ref.registry}/${ref.repo}:${ref.tag ?? 'latest'}`) ?? []);
    if (!entry) throw new Error(`${ref.canonical} is not cached (seed it first)`);
    roots.push({ ref: ref.canonical, digest: entry.digest, mediaType: entry.mediaType, size: entry.size });
  }
  return roots;
}

/** Every cached tag (or every pin), one root per repo:tag. */
export async function allRoots(core: CacheCore, which: 'all' | 'pinned'): Promise<ExportRoot[]> {
  if (which === 'pinned') {
    const pins = [...(await core.pins.list()).map((p) => p.ref), ...core.config.cache.pins];
    return rootsFor(core, [...new Set(pins)]);
  }
  const refs = new Set<string>();
  for await (const entry of core.tags.entries()) refs.add(`${entry.upstream}/${entry.repo}:${entry.tag}`);
  // A tag resolved by HEAD whose manifest no client fetched (or whose content was evicted) has nothing to export.
  const roots = await rootsFor(core, [...refs]);
  const stored = await Promise.all(roots.map(async (root) => (await core.index.get(root.digest))?.manifest === true));
  return roots.filter((_, i) => stored[i]);
}

/**
 * Every digest the roots reach in the store, in an order where a manifest comes after what it names: the
 * root manifests, their stored platform manifests, configs and layers. A platform manifest that was never
 * cached is skipped (that platform was not seeded); a missing config or layer is an error.
 */
export async function closure(core: CacheCore, roots: readonly ExportRoot[]): Promise<Map<Digest, number>> {
  const out = new Map<Digest, number>();
  const visit = async (digest: Digest, depth: number, optional: boolean, from: string): Promise<void> => {
    if (out.has(digest)) return;
    const record = await core.index.get(digest);
    if (!record) {
      if (optional) return;
      throw new Error(`${from}: ${digest} is not cached (seed the image again)`);
    }
    if (record.manifest && depth < 3) {
      const opened = await core.store.open(digest);
      if (!opened) throw new Error(`${from}: ${digest} vanished from the store`);
      const refs = manifestRefs(await readWhole(opened));
      for (const child of refs.manifests) await visit(child, depth + 1, true, from);
      for (const blob of refs.blobs) await visit(blob, depth + 1, false, from);
    }
    out.set(digest, record.size);
  };
  for (const root of roots) await visit(root.digest, 0, false, root.ref);
  return out;
}
