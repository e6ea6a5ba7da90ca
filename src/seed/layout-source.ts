// Reading an OCI image layout entry by entry, from a tar (plain or gzipped: our bundles, skopeo's
// `oci-archive:`) or a directory (skopeo's `oci:`), for `import` and for `export --have`.
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Parser, type ReadEntry } from 'tar';
import { isDigest, type Digest } from '../registry/reference.js';

/** A bundle that cannot be imported; `digest` names the offending content when there is one. */
export class BundleError extends Error {
  readonly code = 'BUNDLE_INVALID';
  constructor(
    message: string,
    readonly digest?: string,
  ) {
    super(message);
    this.name = 'BundleError';
  }
}

/** Called once per file of the layout, in order; the next file comes once `body` has been consumed. */
export type OnEntry = (path: string, size: number, body: Readable) => Promise<void>;

/** What a layout entry is: a blob (by digest), the index, the version file, or something to skip. */
export function classify(path: string): { kind: 'blob'; digest: Digest } | { kind: 'index' | 'layout' | 'other' } {
  const clean = path.replace(/^\.\//, '');
  if (clean === 'index.json') return { kind: 'index' };
  if (clean === 'oci-layout') return { kind: 'layout' };
  const match = /^blobs\/([a-z0-9]+)\/([a-f0-9]+)$/.exec(clean);
  const digest = match ? `${match[1]}:${match[2]}` : '';
  return isDigest(digest) ? { kind: 'blob', digest } : { kind: 'other' };
}

/** Reads a tar (plain or gzipped) through `onEntry`, one entry at a time. */
async function readTar(file: string, onEntry: OnEntry, onBytes: (n: number) => void): Promise<void> {
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

async function readDirectory(dir: string, onEntry: OnEntry, onBytes: (n: number) => void): Promise<void> {
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

/** Reads a layout, a directory or a tar, through `onEntry`; `onBytes` sees the bytes read. */
export async function readLayout(source: string, onEntry: OnEntry, onBytes: (n: number) => void): Promise<void> {
  if ((await stat(source)).isDirectory()) await readDirectory(source, onEntry, onBytes);
  else await readTar(source, onEntry, onBytes);
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
