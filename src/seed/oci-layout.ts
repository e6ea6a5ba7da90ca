// The OCI image layout (image-spec "image-layout"): what a bundle holds, and how to find the images in a cache.
//
//   oci-layout            {"imageLayoutVersion":"1.0.0"}
//   index.json            one entry per image, annotated with its full reference
//   blobs/sha256/<hex>    manifests, configs and layers
import { readWhole, type BlobStore } from '../cache/blob-store.js';
import type { BlobIndex } from '../index/blob-index.js';
import type { PinIndex } from '../index/pin-index.js';
import type { TagEntry, TagIndex } from '../index/tag-index.js';
import type { Descriptor } from '../registry/manifest.js';
import { MissingContentError, walkManifests } from '../registry/manifest-graph.js';
import { RegistryError } from '../registry/errors.js';
import { isIndexType } from '../registry/media-types.js';
import { parseImageReference, type Digest } from '../registry/reference.js';

export const REF_NAME = 'org.opencontainers.image.ref.name';
export const OCI_LAYOUT = JSON.stringify({ imageLayoutVersion: '1.0.0' });

/** An index.json entry as export writes it: a descriptor with its media type, size and reference name. */
export type IndexEntry = Descriptor & { mediaType: string; size: number };

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

/** What finding cached images reads: tag records and content records. */
export interface RootDeps {
  tags: Pick<TagIndex, 'entries'>;
  index: Pick<BlobIndex, 'get'>;
}

/** Finding every pinned image also reads the pins, those in the index and those in the config. */
export interface AllRootsDeps extends RootDeps {
  pins: Pick<PinIndex, 'list'>;
  configPins: readonly string[];
}

/** What walking cached images reads: content records and the stored manifests. */
export interface ClosureDeps {
  index: Pick<BlobIndex, 'get'>;
  store: Pick<BlobStore, 'open'>;
}

/** The tag record to export for repo:tag: the index when the tag was cached as one, else any. */
function bestEntry(entries: TagEntry[]): TagEntry | undefined {
  return entries.find((e) => isIndexType(e.mediaType)) ?? entries[0];
}

/**
 * Tag records whose manifest is in the store, by `registry/repo:tag`. A tag resolved by HEAD whose manifest no
 * client fetched (or whose content was evicted) has nothing to export, though another accept class may.
 */
async function storedTags(deps: RootDeps): Promise<Map<string, TagEntry[]>> {
  const byTag = new Map<string, TagEntry[]>();
  for await (const entry of deps.tags.entries()) {
    if (!(await deps.index.get(entry.digest))?.manifest) continue;
    const key = `${entry.upstream}/${entry.repo}:${entry.tag}`;
    byTag.set(key, [...(byTag.get(key) ?? []), entry]);
  }
  return byTag;
}

/** Images named by reference (tag or digest), as cached. Throws for one that is not cached. */
export async function rootsFor(deps: RootDeps, refs: readonly string[], stored?: Map<string, TagEntry[]>): Promise<ExportRoot[]> {
  const byTag = stored ?? (await storedTags(deps));
  const roots: ExportRoot[] = [];
  for (const text of refs) {
    const ref = parseImageReference(text);
    if (ref.digest) {
      const record = await deps.index.get(ref.digest);
      if (!record?.manifest) throw notCached(`${ref.canonical} is not cached`);
      roots.push({ ref: ref.canonical, digest: ref.digest, mediaType: record.mediaType, size: record.size });
      continue;
    }
    const entry = bestEntry(byTag.get(`${ref.registry}/${ref.repo}:${ref.tag ?? 'latest'}`) ?? []);
    if (!entry) throw notCached(`${ref.canonical} is not cached (seed it first)`);
    roots.push({ ref: ref.canonical, digest: entry.digest, mediaType: entry.mediaType, size: entry.size });
  }
  return roots;
}

/** A RegistryError, so that the admin API answers 404 with this message and the CLI prints it as before. */
function notCached(message: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', message);
}

/** Every cached tag (or every pin), one root per repo:tag. */
export async function allRoots(deps: AllRootsDeps, which: 'all' | 'pinned'): Promise<ExportRoot[]> {
  if (which === 'pinned') {
    const pins = [...(await deps.pins.list()).map((p) => p.ref), ...deps.configPins];
    return rootsFor(deps, [...new Set(pins)]);
  }
  const stored = await storedTags(deps);
  return rootsFor(deps, [...stored.keys()], stored);
}

/**
 * Every digest the roots reach in the store, in an order where a manifest comes after what it names: the
 * root manifests, their stored platform manifests, configs and layers. A platform manifest that was never
 * cached is skipped (that platform was not seeded); a missing config or layer is an error.
 */
export async function closure(deps: ClosureDeps, roots: readonly ExportRoot[]): Promise<Map<Digest, number>> {
  const refOf = (root: Digest): string => roots.find((r) => r.digest === root)?.ref ?? root;
  const nodes = await walkManifests(
    roots.map((r) => ({ digest: r.digest })),
    {
      maxDepth: 3,
      missing: 'error',
      platformsOptional: true,
      badManifest: 'skip',
      artifactBlobs: true,
      dedupe: true,
      stat: (node) => deps.index.get(node.digest),
      read: async (node) => {
        const opened = await deps.store.open(node.digest);
        if (!opened) throw new Error(`${refOf(node.root)}: ${node.digest} vanished from the store`);
        return readWhole(opened);
      },
    },
  ).catch((err: unknown) => {
    if (err instanceof MissingContentError) throw notCached(`${refOf(err.root)}: ${err.digest} is not cached (seed the image again)`);
    throw err;
  });
  const out = new Map<Digest, number>();
  for (const node of nodes) if (node.info) out.set(node.digest, node.info.size);
  return out;
}
