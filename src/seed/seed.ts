// `regmirror seed`: pulls images into the cache through the very path a client's pull takes (the manifest
// cache with its tag records and rate-limit accounting, one shared verified download per blob), then pins them.
import type { BlobCache } from '../cache/blobs.js';
import type { BlobFills } from '../cache/fills.js';
import type { ManifestCache } from '../cache/manifests.js';
import type { BlobIndex } from '../index/blob-index.js';
import type { PinIndex } from '../index/pin-index.js';
import type { Descriptor, Platform as DescribedPlatform } from '../registry/manifest.js';
import { walkManifests, type GraphNode } from '../registry/manifest-graph.js';
import { ANY_MANIFEST } from '../registry/media-types.js';
import { RegistryError } from '../registry/errors.js';
import type { Digest, ImageReference, Repository, Tag } from '../registry/reference.js';

/** Blobs downloaded at once per image, as docker does. */
const PARALLEL = 3;

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface SeedProgress {
  /** Called once per image when its blobs are known, then with bytes as they arrive or are found cached. */
  start(image: string, totalBytes: number): void;
  advance(bytes: number): void;
  end(): void;
}

export interface ImageSeedResult {
  ref: string;
  digest: Digest;
  platforms: string[];
  blobs: number;
  bytesFetched: number;
  bytesCached: number;
}

/** What a seed uses of the cache: the manifest cache, the blob path, and the records it checks and writes. */
export interface SeedDeps {
  /** This mirror's upstream (docker.io): a reference to another registry is refused. */
  upstreamName: string;
  manifests: Pick<ManifestCache, 'byTag' | 'byDigest'>;
  blobs: Pick<BlobCache, 'lookup' | 'fetch'>;
  /** Waits for a download to settle, so that its record is written. */
  fills: Pick<BlobFills, 'settled'>;
  index: Pick<BlobIndex, 'get'>;
  pins: Pick<PinIndex, 'add'>;
}

export function parsePlatforms(text: string): Platform[] {
  return text.split(',').map((part) => {
    const [os, architecture, variant] = part.trim().split('/');
    if (!os || !architecture) throw new Error(`expected a platform like linux/amd64, found "${part}"`);
    return { os, architecture, ...(variant ? { variant } : {}) };
  });
}

function platformName(p: DescribedPlatform | undefined): string {
  return [p?.os ?? '?', p?.architecture ?? '?', ...(p?.variant ? [p.variant] : [])].join('/');
}

function wanted(p: DescribedPlatform | undefined, platforms: Platform[] | 'all'): boolean {
  if (platforms === 'all') return true;
  return platforms.some((w) => w.os === p?.os && w.architecture === p?.architecture && (!w.variant || w.variant === p?.variant));
}

/**
 * Seeds one image: manifests (the index and the chosen platforms), then every blob, then the pin. Manifests
 * come through the manifest cache (one pull each, recorded as a client's pull would be); configs and layers
 * are then downloaded as blobs, three at a time.
 */
export async function seedImage(deps: SeedDeps, ref: ImageReference, platforms: Platform[] | 'all', progress: SeedProgress): Promise<ImageSeedResult> {
  if (ref.registry !== deps.upstreamName) {
    throw new RegistryError('NAME_UNKNOWN', `${ref.canonical}: this mirror's upstream is ${deps.upstreamName}`);
  }
  const { manifests } = deps;
  const top = ref.digest
    ? await manifests.byDigest(ref.repo, ref.digest, ANY_MANIFEST, true)
    : await manifests.byTag(ref.repo, ref.tag as Tag, ANY_MANIFEST, true, { revalidate: true });
  const read = async (node: GraphNode): Promise<Buffer> => {
    if (node.role === 'root') return top.bytes ?? Buffer.alloc(0);
    return (await manifests.byDigest(ref.repo, node.digest, ANY_MANIFEST, true)).bytes ?? Buffer.alloc(0);
  };
  const nodes = await walkManifests([{ digest: top.digest }], {
    maxDepth: 2,
    missing: 'error',
    platformsOptional: false,
    badManifest: 'error',
    artifactBlobs: false,
    dedupe: false,
    // Manifests are fetched when read (a miss is MANIFEST_UNKNOWN then); blobs are fetched below.
    stat: (node) => Promise.resolve({ manifest: node.role !== 'blob' }),
    read,
    selectPlatforms: (children, index) => (index.depth === 0 ? choosePlatforms(ref, children, platforms) : children),
  });
  const images = nodes.filter((n) => n.role === 'platform' && n.depth === 1).map((n) => platformName(n.descriptor.platform));
  if (images.length === 0) images.push('single');
  const blobs = new Map<Digest, number>();
  for (const node of nodes) if (node.role === 'blob') blobs.set(node.digest, node.descriptor.size ?? 0);
  progress.start(ref.canonical, [...blobs.values()].reduce((a, b) => a + b, 0));
  let bytesFetched = 0;
  let bytesCached = 0;
  const queue = [...blobs.keys()];
  const worker = async (): Promise<void> => {
    for (let digest = queue.shift(); digest; digest = queue.shift()) {
      const counted = await seedBlob(deps, ref.repo, digest, progress);
      if (counted.cached) bytesCached += counted.bytes;
      else bytesFetched += counted.bytes;
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  progress.end();
  await deps.pins.add(ref.canonical, Date.now());
  return { ref: ref.canonical, digest: top.digest, platforms: images, blobs: blobs.size, bytesFetched, bytesCached };
}

/** The platform manifests of the top index to seed; none of them is an error naming what the index has. */
function choosePlatforms(ref: ImageReference, children: Descriptor[], platforms: Platform[] | 'all'): Descriptor[] {
  const chosen = children.filter((c) => wanted(c.platform, platforms));
  if (chosen.length === 0) throw new RegistryError('MANIFEST_UNKNOWN', `${ref.canonical}: none of the requested platforms (has ${children.map((c) => platformName(c.platform)).join(', ')})`);
  return chosen;
}

/** A blob from the cache (counted as cached), or its shared download read to the end (counted as fetched). */
async function seedBlob(deps: SeedDeps, repo: Repository, digest: Digest, progress: SeedProgress): Promise<{ bytes: number; cached: boolean }> {
  const local = await deps.blobs.lookup(digest);
  if (local) {
    await local.release();
    progress.advance(local.size ?? 0);
    return { bytes: local.size ?? 0, cached: true };
  }
  const handle = await deps.blobs.fetch(repo, digest);
  if (!handle) throw new RegistryError('BLOB_UNKNOWN', `${repo}: blob ${digest} not found upstream`);
  let bytes = 0;
  for await (const chunk of handle.read() as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    progress.advance(chunk.length);
  }
  // The last byte comes once the digest is verified; the file is in place once the download settles.
  await deps.fills.settled(digest);
  if (!(await deps.index.get(digest))) throw new RegistryError('UNAVAILABLE', `${repo}: blob ${digest} could not be cached (is the disk full?)`);
  return { bytes, cached: false };
}
