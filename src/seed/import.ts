// `regmirror import`: loads an OCI image layout (our bundles, or skopeo's `oci:` directories and `oci-archive:`
// tars) into the cache. Every blob is verified against its digest while it is read; records, tags and pins are
// written only once the whole bundle checked out, and a refused bundle leaves the cache as it was.
//
// What import trusts (README "Security"): a bundle's blobs are verified against their digests, its structure is
// bounded (index.json size, manifest size, descriptors walked, media type grammar), but its tags are taken as
// given: a bundle may re-point docker.io/library/alpine:3.19 at other content.
//
// An import that fails in-process removes the records and files it added. One killed outright (kill -9, power
// loss) leaves verified files without records: harmless (never served, counted as `unindexed` by fsck) and
// recoverable: the next import or download of that digest, or `fsck --repair`, adopts them.
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { readWhole, type BlobStore } from '../cache/blob-store.js';
import { verifyStream } from '../cache/digest-verify.js';
import type { BlobIndex } from '../index/blob-index.js';
import type { PinIndex } from '../index/pin-index.js';
import type { TagIndex } from '../index/tag-index.js';
import { blobsOf, ManifestError, parseManifest, type Descriptor } from '../registry/manifest.js';
import { MissingContentError, walkManifests, WalkLimitError } from '../registry/manifest-graph.js';
import { isMediaType, MANIFEST_TYPES } from '../registry/media-types.js';
import { parseImageReference, type Digest } from '../registry/reference.js';
import type { ImportJournal } from './import-journal.js';
import { BundleError, classify, readLayout } from './layout-source.js';
import { REF_NAME } from './oci-layout.js';

export interface ImportSummary {
  images: number;
  tags: string[];
  blobs: number;
  bytes: number;
  alreadyCached: number;
  /** Index entries that could not become tags (no full reference, or another registry). */
  warnings: string[];
}

/** What an import writes: blobs into the store, then records, tags and pins. */
export interface ImportDeps {
  /** The registries this mirror serves: a reference to another becomes no tag. */
  registries: ReadonlySet<string>;
  store: Pick<BlobStore, 'stat' | 'open' | 'createWriter' | 'delete'>;
  index: Pick<BlobIndex, 'get' | 'put' | 'delete'>;
  tags: Pick<TagIndex, 'put'>;
  pins: Pick<PinIndex, 'add'>;
  /** Lists the files being added, so that an import killed half-way is undone at the next open (app.ts). */
  journal?: ImportJournal | undefined;
}

const OCTET_STREAM = 'application/octet-stream';
/** Read whole into memory, so capped before reading: a 1.5 GB index.json once took 3.3 GB RSS (issue 14). */
const MAX_INDEX = 16 * 2 ** 20;
const MAX_LAYOUT_FILE = 64 * 2 ** 10;
/** distribution refuses manifests over 4 MiB; a bundle's are read whole too. */
const MAX_MANIFEST = 4 * 2 ** 20;
/** Far above any real bundle (each descriptor visited once), far below a walk that would never end. */
const MAX_VISITS = 1_000_000;

class Importer {
  /** Blobs this import put in the store: removed again if the import is refused. */
  readonly written: Digest[] = [];
  /** Records this import wrote: removed (before their files) if it fails after writing them. */
  readonly recorded: Digest[] = [];
  alreadyCached = 0;
  bytes = 0;
  index: Buffer | undefined;
  layout: Buffer | undefined;

  constructor(
    private readonly store: ImportDeps['store'],
    private readonly journal: ImportJournal | undefined,
  ) {}

  async entry(path: string, size: number, body: Readable): Promise<void> {
    const what = classify(path);
    if (what.kind === 'index' || what.kind === 'layout') {
      const limit = what.kind === 'index' ? MAX_INDEX : MAX_LAYOUT_FILE;
      const tooLarge = () => new BundleError(`${path}: over the ${what.kind === 'index' ? '16 MiB' : '64 KiB'} limit`);
      if (size > limit) throw tooLarge();
      const chunks: Buffer[] = [];
      let read = 0;
      // Counted as well: a directory's file may grow after its size was taken.
      for await (const chunk of body as AsyncIterable<Buffer>) {
        read += chunk.length;
        if (read > limit) throw tooLarge();
        chunks.push(chunk);
      }
      this[what.kind] = Buffer.concat(chunks);
      return;
    }
    if (what.kind !== 'blob') {
      body.resume();
      return;
    }
    const { digest } = what;
    if (await this.store.stat(digest)) {
      // Already here (verified when written), but the bundle's copy is checked all the same: a damaged bundle
      // is refused whole, whatever the far side happens to have.
      try {
        await verifyStream(body as AsyncIterable<Buffer>, digest, size);
      } catch (err) {
        throw new BundleError(`${digest}: ${(err as Error).message}`, digest);
      }
      this.alreadyCached++;
      return;
    }
    await this.journal?.add(digest);
    const writer = await this.store.createWriter(digest, size);
    try {
      await pipeline(body, writer);
      await writer.commit();
    } catch (err) {
      await writer.abort();
      throw new BundleError(`${digest}: ${(err as Error).message}`, digest);
    }
    this.written.push(digest);
    this.bytes += size;
  }

  /**
   * Undoes a failed import: its records first, then its files (as retention removes content), so that no record
   * ever names a missing file. Tags and pins already written stay: a tag whose manifest is absent is fetched
   * by digest like one resolved by HEAD.
   */
  async rollback(index: ImportDeps['index']): Promise<void> {
    for (const digest of this.recorded) await index.delete(digest);
    for (const digest of this.written) await this.store.delete(digest);
  }
}

export async function importBundle(deps: ImportDeps, source: string, onBytes: (n: number) => void = () => undefined): Promise<ImportSummary> {
  const importer = new Importer(deps.store, deps.journal);
  const onEntry = (path: string, size: number, body: Readable) => importer.entry(path, size, body);
  await deps.journal?.begin();
  try {
    await readLayout(source, onEntry, onBytes);
    return await commitImport(deps, importer);
  } catch (err) {
    await importer.rollback(deps.index);
    throw err;
  } finally {
    await deps.journal?.end();
  }
}

/** After every blob checked out: the layout must be complete here; then records, tags and pins. */
async function commitImport(deps: ImportDeps, importer: Importer): Promise<ImportSummary> {
  if (!importer.index) throw new BundleError('no index.json: not an OCI image layout');
  if (importer.layout && layoutVersion(importer.layout) !== '1.0.0') throw new BundleError('oci-layout: unsupported imageLayoutVersion');
  const entries = layoutEntries(importer.index);
  const types = await contentTypes(deps, entries);
  const now = Date.now();
  for (const digest of importer.written) {
    const info = await deps.store.stat(digest);
    const type = types.get(digest) ?? { mediaType: OCTET_STREAM, manifest: false };
    if (!info) continue;
    importer.recorded.push(digest);
    await deps.index.put(digest, { size: info.size, ...type, createdAt: now, lastAccessAt: now });
  }
  // Blobs that were on disk but not indexed (an earlier refused import, a crash) are adopted as well.
  for (const [digest, type] of types) {
    if (await deps.index.get(digest)) continue;
    const info = await deps.store.stat(digest);
    if (!info) continue;
    importer.recorded.push(digest);
    await deps.index.put(digest, { size: info.size, ...type, createdAt: now, lastAccessAt: now });
  }
  const tags: string[] = [];
  const warnings: string[] = [];
  for (const entry of entries) {
    const name = entry.annotations?.[REF_NAME];
    let ref;
    try {
      ref = name && name.includes('/') ? parseImageReference(name) : undefined;
    } catch {
      ref = undefined;
    }
    if (!ref || !deps.registries.has(ref.registry)) {
      warnings.push(`${entry.digest}: ${name ? `"${name}" names a registry this mirror does not serve` : 'no reference name'}, imported without a tag`);
      continue;
    }
    if (ref.tag) {
      await deps.tags.put({
        upstream: ref.registry,
        repo: ref.repo,
        tag: ref.tag,
        acceptKey: '*',
        digest: entry.digest,
        mediaType: entry.mediaType ?? OCTET_STREAM,
        size: entry.size ?? (await deps.store.stat(entry.digest))?.size ?? 0,
        checkedAt: now,
      });
    }
    await deps.pins.add(ref.canonical, now);
    tags.push(ref.canonical);
  }
  return { images: entries.length, tags, blobs: importer.written.length, bytes: importer.bytes, alreadyCached: importer.alreadyCached, warnings };
}

function layoutVersion(bytes: Buffer): unknown {
  try {
    return (JSON.parse(bytes.toString('utf8')) as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
  } catch {
    throw new BundleError('oci-layout is not JSON');
  }
}

/** index.json's entries: an image index whose every entry must name a valid digest. */
function layoutEntries(bytes: Buffer): Descriptor[] {
  let index;
  try {
    index = parseManifest(bytes);
  } catch (err) {
    if (!(err instanceof ManifestError)) throw err;
    throw new BundleError(err.problem === 'not-json' ? 'index.json is not JSON' : `index.json: ${err.reason}`);
  }
  if (index.invalid.length > 0) throw new BundleError(`index.json: bad digest ${JSON.stringify(index.invalid[0])}`);
  const entries = index.manifests ?? [];
  checkMediaTypes('index.json', entries);
  return entries;
}

/** Media types become Content-Type headers when served: one that is not `type/subtype` refuses the bundle. */
function checkMediaTypes(where: string, descriptors: readonly Descriptor[]): void {
  const bad = descriptors.find((d) => d.mediaType !== undefined && !isMediaType(d.mediaType));
  if (bad) throw new BundleError(`${where}: ${bad.digest} has an invalid mediaType ${JSON.stringify(bad.mediaType?.slice(0, 200))}`, bad.digest);
}

/**
 * Every digest the entries reach, with its media type (from the descriptor naming it) and whether it is a
 * manifest. Each must be in the bundle or already here, except a platform manifest (that platform was not
 * exported); a manifest that does not parse, or names a bad digest, refuses the bundle.
 */
async function contentTypes(deps: ImportDeps, entries: Descriptor[]): Promise<Map<Digest, { mediaType: string; manifest: boolean }>> {
  const missing = (digest: Digest): BundleError => new BundleError(`${digest} is neither in the bundle nor cached here`, digest);
  const nodes = await walkManifests(entries, {
    maxDepth: 3,
    missing: 'error',
    platformsOptional: true,
    badManifest: 'error',
    artifactBlobs: false,
    // Each digest once: a bundle may name one manifest from thousands of places (see MAX_VISITS).
    dedupe: true,
    maxVisits: MAX_VISITS,
    stat: async (node) => {
      if (!(await deps.store.stat(node.digest))) return undefined;
      const mediaType = node.descriptor.mediaType;
      return { mediaType: mediaType ?? OCTET_STREAM, manifest: MANIFEST_TYPES.includes(mediaType as never) };
    },
    read: async (node) => {
      const opened = await deps.store.open(node.digest);
      if (!opened) throw missing(node.digest);
      if (opened.size > MAX_MANIFEST) {
        await opened.close();
        throw new BundleError(`${node.digest}: a manifest over 4 MiB`, node.digest);
      }
      const bytes = await readWhole(opened);
      // Every descriptor, not only the first to reach a digest (the walk visits each digest once).
      const manifest = parseManifest(bytes, node.digest);
      checkMediaTypes(node.digest, [...(manifest.manifests ?? []), ...blobsOf(manifest, true)]);
      return bytes;
    },
  }).catch((err: unknown) => {
    if (err instanceof MissingContentError) throw missing(err.digest);
    if (err instanceof ManifestError) throw new BundleError(err.message, err.digest);
    if (err instanceof WalkLimitError) throw new BundleError(`index.json ${err.message}`);
    throw err;
  });
  const types = new Map<Digest, { mediaType: string; manifest: boolean }>();
  for (const node of nodes) {
    if (node.info) types.set(node.digest, node.info);
    else types.delete(node.digest);
  }
  return types;
}
