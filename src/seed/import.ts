// `regmirror import`: loads an OCI image layout (our bundles, or skopeo's `oci:` directories and `oci-archive:`
// tars) into the cache. Every blob is verified against its digest while it is read; records, tags and pins are
// written only once the whole bundle checked out, and a refused bundle leaves the cache as it was.
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Parser, type ReadEntry } from 'tar';
import type { CacheCore } from '../app.js';
import { MANIFEST_TYPES } from '../registry/media-types.js';
import { isDigest, parseImageReference, type Digest } from '../registry/reference.js';
import { readWhole } from '../cache/blob-store.js';
import { verifyStream } from '../cache/digest-verify.js';
import { REF_NAME, type LayoutIndex } from './oci-layout.js';

export interface ImportSummary {
  images: number;
  tags: string[];
  blobs: number;
  bytes: number;
  alreadyCached: number;
  /** Index entries that could not become tags (no full reference, or another registry). */
  warnings: string[];
}

export class BundleError extends Error {
  constructor(
    message: string,
    readonly digest?: string,
  ) {
    super(message);
    this.name = 'BundleError';
  }
}

interface Descriptor {
  mediaType?: string;
  digest?: string;
  size?: number;
}

/** What a layout entry is: a blob (by digest), the index, the version file, or something to skip. */
function classify(path: string): { kind: 'blob'; digest: Digest } | { kind: 'index' | 'layout' | 'other' } {
  const clean = path.replace(/^\.\//, '');
  if (clean === 'index.json') return { kind: 'index' };
  if (clean === 'oci-layout') return { kind: 'layout' };
  const match = /^blobs\/([a-z0-9]+)\/([a-f0-9]+)$/.exec(clean);
  const digest = match ? `${match[1]}:${match[2]}` : '';
  return isDigest(digest) ? { kind: 'blob', digest } : { kind: 'other' };
}

class Importer {
  /** Blobs this import put in the store: removed again if the import is refused. */
  readonly written: Digest[] = [];
  alreadyCached = 0;
  bytes = 0;
  index: Buffer | undefined;
  layout: Buffer | undefined;

  constructor(private readonly core: CacheCore) {}

  async entry(path: string, size: number, body: Readable): Promise<void> {
    const what = classify(path);
    if (what.kind === 'index' || what.kind === 'layout') {
      const chunks: Buffer[] = [];
      for await (const chunk of body as AsyncIterable<Buffer>) chunks.push(chunk);
      this[what.kind] = Buffer.concat(chunks);
      return;
    }
    if (what.kind !== 'blob') {
      body.resume();
      return;
    }
    const { digest } = what;
    if (await this.core.store.stat(digest)) {
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
    const writer = await this.core.store.createWriter(digest, size);
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

  /** Undoes the blobs of a refused import (they have no records yet, so nothing ever saw them). */
  async rollback(): Promise<void> {
    for (const digest of this.written) await this.core.store.delete(digest);
  }
}

/** Reads a tar (plain or gzipped) through `onEntry`, one entry at a time. */
async function readTar(file: string, onEntry: (path: string, size: number, body: Readable) => Promise<void>, onBytes: (n: number) => void): Promise<void> {
  let failure: Error | undefined;
  let chain = Promise.resolve();
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      if (failure || entry.type !== 'File') {
        entry.resume();
        return;
      }
      // The parser hands over the next entry only once this one's data has been consumed.
      chain = chain.then(() => onEntry(entry.path, entry.size ?? 0, entry as unknown as Readable)).catch((err: unknown) => {
        failure ??= err instanceof Error ? err : new Error(String(err));
        entry.resume();
      });
    },
  });
  const source = createReadStream(file);
  source.on('data', (chunk) => onBytes(chunk.length));
  const parsed = new Promise<void>((resolve, reject) => {
    parser.on('end', () => resolve());
    parser.on('error', (err: Error) => reject(new BundleError(`not a readable tar: ${err.message}`)));
    source.on('error', reject);
  });
  source.pipe(parser);
  await parsed;
  await chain;
  if (failure) throw failure;
}

async function readDirectory(dir: string, onEntry: (path: string, size: number, body: Readable) => Promise<void>, onBytes: (n: number) => void): Promise<void> {
  const paths = ['oci-layout', 'index.json'];
  for (const algorithm of await readdir(join(dir, 'blobs')).catch(() => [] as string[])) {
    for (const name of await readdir(join(dir, 'blobs', algorithm))) paths.push(`blobs/${algorithm}/${name}`);
  }
  for (const path of paths) {
    const info = await stat(join(dir, path)).catch(() => undefined);
    if (!info?.isFile()) continue;
    const source = createReadStream(join(dir, path));
    try {
      await onEntry(path, info.size, counted(source, onBytes));
    } finally {
      source.destroy(); // read to the end, or refused before it: the descriptor goes either way
    }
  }
}

/**
 * The same bytes, counted as the consumer pulls them. A 'data' listener would start the file flowing at once,
 * and whatever it read before the importer attached (while it awaits the store) would be lost.
 */
function counted(source: Readable, onBytes: (n: number) => void): Readable {
  return Readable.from(
    (async function* () {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        onBytes(chunk.length);
        yield chunk;
      }
    })(),
    { objectMode: false },
  );
}

/** Total bytes to read, for the progress bar. */
export async function bundleSize(source: string): Promise<number> {
  const info = await stat(source);
  if (info.isFile()) return info.size;
  // The same files readDirectory reads, so the bar ends at 100 %.
  let total = 0;
  for (const file of ['oci-layout', 'index.json']) total += (await stat(join(source, file)).catch(() => undefined))?.size ?? 0;
  for (const algorithm of await readdir(join(source, 'blobs')).catch(() => [] as string[])) {
    for (const name of await readdir(join(source, 'blobs', algorithm))) total += (await stat(join(source, 'blobs', algorithm, name))).size;
  }
  return total;
}

export async function importBundle(core: CacheCore, source: string, onBytes: (n: number) => void = () => undefined): Promise<ImportSummary> {
  const importer = new Importer(core);
  const onEntry = (path: string, size: number, body: Readable) => importer.entry(path, size, body);
  try {
    if ((await stat(source)).isDirectory()) await readDirectory(source, onEntry, onBytes);
    else await readTar(source, onEntry, onBytes);
    return await commitImport(core, importer);
  } catch (err) {
    await importer.rollback();
    throw err;
  }
}

/** After every blob checked out: the layout must be complete here; then records, tags and pins. */
async function commitImport(core: CacheCore, importer: Importer): Promise<ImportSummary> {
  if (!importer.index) throw new BundleError('no index.json: not an OCI image layout');
  if (importer.layout && (JSON.parse(importer.layout.toString('utf8')) as { imageLayoutVersion?: string }).imageLayoutVersion !== '1.0.0') {
    throw new BundleError('oci-layout: unsupported imageLayoutVersion');
  }
  let index: LayoutIndex;
  try {
    index = JSON.parse(importer.index.toString('utf8')) as LayoutIndex;
  } catch {
    throw new BundleError('index.json is not JSON');
  }
  const types = new Map<Digest, { mediaType: string; manifest: boolean }>();
  const walk = async (d: Descriptor, depth: number, optional: boolean): Promise<void> => {
    if (typeof d.digest !== 'string' || !isDigest(d.digest)) throw new BundleError(`index.json: bad digest ${JSON.stringify(d.digest)}`);
    const digest = d.digest;
    const manifest = MANIFEST_TYPES.includes(d.mediaType as never);
    types.set(digest, { mediaType: d.mediaType ?? 'application/octet-stream', manifest });
    const present = await core.store.open(digest);
    if (!present) {
      types.delete(digest);
      if (optional) return;
      throw new BundleError(`${digest} is neither in the bundle nor cached here`, digest);
    }
    if (!manifest || depth >= 3) return void (await present.close());
    const json = JSON.parse((await readWhole(present)).toString('utf8')) as { manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
    // A platform manifest may be absent (that platform was not exported); a config or layer may not.
    for (const child of json.manifests ?? []) await walk(child, depth + 1, true);
    for (const blob of [...(json.config ? [json.config] : []), ...(json.layers ?? [])]) await walk(blob, depth + 1, false);
  };
  for (const entry of index.manifests ?? []) await walk(entry, 0, false);

  const now = Date.now();
  for (const digest of importer.written) {
    const info = await core.store.stat(digest);
    const type = types.get(digest) ?? { mediaType: 'application/octet-stream', manifest: false };
    if (info) await core.index.put(digest, { size: info.size, ...type, createdAt: now, lastAccessAt: now });
  }
  // Blobs that were on disk but not indexed (an earlier refused import, a crash) are adopted as well.
  for (const [digest, type] of types) {
    if (await core.index.get(digest)) continue;
    const info = await core.store.stat(digest);
    if (info) await core.index.put(digest, { size: info.size, ...type, createdAt: now, lastAccessAt: now });
  }
  const tags: string[] = [];
  const warnings: string[] = [];
  for (const entry of index.manifests ?? []) {
    const name = entry.annotations?.[REF_NAME];
    let ref;
    try {
      ref = name && name.includes('/') ? parseImageReference(name) : undefined;
    } catch {
      ref = undefined;
    }
    if (!ref || ref.registry !== core.config.upstream.name) {
      warnings.push(`${entry.digest}: ${name ? `"${name}" is not a ${core.config.upstream.name} reference` : 'no reference name'}, imported without a tag`);
      continue;
    }
    if (ref.tag) {
      await core.tags.put({
        upstream: core.config.upstream.name,
        repo: ref.repo,
        tag: ref.tag,
        acceptKey: '*',
        digest: entry.digest,
        mediaType: entry.mediaType,
        size: entry.size,
        checkedAt: now,
      });
    }
    await core.pins.add(ref.canonical, now);
    tags.push(ref.canonical);
  }
  return { images: (index.manifests ?? []).length, tags, blobs: importer.written.length, bytes: importer.bytes, alreadyCached: importer.alreadyCached, warnings };
}

/** Digests the far side has, for an incremental export: one per line, or the blobs of an earlier bundle. */
export async function readHave(path: string): Promise<Set<string>> {
  const have = new Set<string>();
  const info = await stat(path);
  if (info.isFile() && !path.endsWith('.tar')) {
    for (const line of (await readFile(path, 'utf8')).split('\n')) if (isDigest(line.trim())) have.add(line.trim());
    return have;
  }
  const add = (p: string, _size: number, body: Readable): Promise<void> => {
    const what = classify(p);
    if (what.kind === 'blob') have.add(what.digest);
    body.resume();
    return Promise.resolve();
  };
  if (info.isDirectory()) await readDirectory(path, add, () => undefined);
  else await readTar(path, add, () => undefined);
  return have;
}
