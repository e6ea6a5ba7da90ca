// `regmirror seed`: pulls images into the cache through the very path a client's pull takes (the manifest
// cache with its tag records and rate-limit accounting, one shared verified download per blob), then pins them.
import type { CacheCore } from '../app.js';
import { acceptClass, MANIFEST_TYPES } from '../registry/media-types.js';
import type { Digest, ImageReference, Repository, Tag } from '../registry/reference.js';

/** Every manifest type: a seed takes the image as upstream has it (an index for multi-arch images). */
export const ANY_MANIFEST = acceptClass(MANIFEST_TYPES.join(', '));
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

interface Descriptor {
  digest: Digest;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

export function parsePlatforms(text: string): Platform[] {
  return text.split(',').map((part) => {
    const [os, architecture, variant] = part.trim().split('/');
    if (!os || !architecture) throw new Error(`expected a platform like linux/amd64, found "${part}"`);
    return { os, architecture, ...(variant ? { variant } : {}) };
  });
}

function platformName(p: Descriptor['platform']): string {
  return [p?.os ?? '?', p?.architecture ?? '?', ...(p?.variant ? [p.variant] : [])].join('/');
}

function wanted(p: Descriptor['platform'], platforms: Platform[] | 'all'): boolean {
  if (platforms === 'all') return true;
  return platforms.some((w) => w.os === p?.os && w.architecture === p?.architecture && (!w.variant || w.variant === p?.variant));
}

/** Seeds one image: manifests (the index and the chosen platforms), then every blob, then the pin. */
export async function seedImage(core: CacheCore, ref: ImageReference, platforms: Platform[] | 'all', progress: SeedProgress): Promise<ImageSeedResult> {
  if (ref.registry !== core.config.upstream.name) {
    throw new Error(`${ref.canonical}: this mirror's upstream is ${core.config.upstream.name}`);
  }
  const { manifests } = core;
  const top = ref.digest
    ? await manifests.byDigest(ref.repo, ref.digest, ANY_MANIFEST, true)
    : await manifests.byTag(ref.repo, ref.tag as Tag, ANY_MANIFEST, true, { revalidate: true });
  const topBytes = top.bytes ?? Buffer.alloc(0);
  const children = (JSON.parse(topBytes.toString('utf8')) as { manifests?: Descriptor[] }).manifests;
  const images: Array<{ bytes: Buffer; platform: string }> = [];
  if (Array.isArray(children)) {
    for (const child of children.filter((c) => wanted(c.platform, platforms))) {
      const m = await manifests.byDigest(ref.repo, child.digest, ANY_MANIFEST, true);
      images.push({ bytes: m.bytes ?? Buffer.alloc(0), platform: platformName(child.platform) });
    }
    if (images.length === 0) throw new Error(`${ref.canonical}: none of the requested platforms (has ${children.map((c) => platformName(c.platform)).join(', ')})`);
  } else {
    images.push({ bytes: topBytes, platform: 'single' });
  }
  const blobs = new Map<Digest, number>();
  for (const image of images) {
    const layers = (JSON.parse(image.bytes.toString('utf8')) as { config?: Descriptor; layers?: Descriptor[] });
    for (const d of [...(layers.config ? [layers.config] : []), ...(layers.layers ?? [])]) blobs.set(d.digest, d.size);
  }
  progress.start(ref.canonical, [...blobs.values()].reduce((a, b) => a + b, 0));
  let bytesFetched = 0;
  let bytesCached = 0;
  const queue = [...blobs.keys()];
  const worker = async (): Promise<void> => {
    for (let digest = queue.shift(); digest; digest = queue.shift()) {
      const counted = await seedBlob(core, ref.repo, digest, progress);
      if (counted.cached) bytesCached += counted.bytes;
      else bytesFetched += counted.bytes;
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  progress.end();
  await core.pins.add(ref.canonical, Date.now());
  return { ref: ref.canonical, digest: top.digest, platforms: images.map((i) => i.platform), blobs: blobs.size, bytesFetched, bytesCached };
}

/** A blob from the cache (counted as cached), or its shared download read to the end (counted as fetched). */
async function seedBlob(core: CacheCore, repo: Repository, digest: Digest, progress: SeedProgress): Promise<{ bytes: number; cached: boolean }> {
  const local = await core.blobs.lookup(digest);
  if (local) {
    await local.release();
    progress.advance(local.size ?? 0);
    return { bytes: local.size ?? 0, cached: true };
  }
  const handle = await core.blobs.fetch(repo, digest);
  if (!handle) throw new Error(`${repo}: blob ${digest} not found upstream`);
  let bytes = 0;
  for await (const chunk of handle.read() as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    progress.advance(chunk.length);
  }
  // The last byte comes once the digest is verified; the file is in place once the download settles.
  await core.fills.settled(digest);
  if (!(await core.index.get(digest))) throw new Error(`${repo}: blob ${digest} could not be cached (is the disk full?)`);
  return { bytes, cached: false };
}

/** Pulls spent so far: manifest GETs upstream answered with 200 (what Docker Hub counts). */
export async function pullsSpent(core: CacheCore): Promise<number> {
  const { values } = await core.metrics.upstreamRequests.get();
  return values.filter((v) => v.labels.kind === 'manifest' && v.labels.method === 'GET' && v.labels.status === '200').reduce((sum, v) => sum + v.value, 0);
}
