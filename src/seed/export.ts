// `regmirror export`: an OCI image layout streamed as a tar, straight from the store (no staging copy).
// Headers come from node-tar's Header and Pax, so what ustar cannot hold (a sha512 blob path is 141 bytes, a
// layer over 8 GiB) goes in a pax extended header before the entry, as tar itself writes it (POSIX pax format).
import { type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Header, Pax } from 'tar';
import { digestAlgorithm, digestHex, type Digest } from '../registry/reference.js';
import { OCI_INDEX } from '../registry/media-types.js';
import { OCI_LAYOUT, REF_NAME, closure, type ClosureDeps, type ExportRoot, type LayoutIndex } from './oci-layout.js';

const BLOCK = 512;
/** Fixed times make a bundle's bytes depend on its content only. */
const MTIME = new Date(0);

export interface ExportSummary {
  images: number;
  blobs: number;
  bytes: number;
  /** Blobs left out because the far side has them (--have). */
  skipped: number;
}

async function writeChunk(out: Writable, chunk: Buffer): Promise<void> {
  if (out.destroyed) throw new Error('the bundle\'s destination closed before the export ended');
  // A destination destroyed while full (a client of the admin API that went away) never drains: its close ends
  // the wait, or the export would hold its blobs in use for good.
  if (!out.write(chunk)) await drained(out);
}

function drained(out: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (closed: boolean) => () => {
      out.off('drain', onDrain);
      out.off('close', onClose);
      if (closed) reject(new Error('the bundle\'s destination closed before the export ended'));
      else resolve();
    };
    const onDrain = settle(false);
    const onClose = settle(true);
    out.once('drain', onDrain);
    out.once('close', onClose);
  });
}

async function writeHeader(out: Writable, path: string, size: number): Promise<void> {
  const block = Buffer.alloc(BLOCK);
  // encode() answers whether a field did not fit (the ustar fields then hold a truncated or split form).
  const needPax = new Header({ path, size, mode: 0o644, mtime: MTIME, type: 'File', uid: 0, gid: 0 }).encode(block, 0);
  if (needPax) await writeChunk(out, new Pax({ path, size, mtime: MTIME }).encode());
  await writeChunk(out, block);
}

async function writePadding(out: Writable, size: number): Promise<void> {
  const rest = size % BLOCK;
  if (rest > 0) await writeChunk(out, Buffer.alloc(BLOCK - rest));
}

async function writeFile(out: Writable, path: string, bytes: Buffer): Promise<void> {
  await writeHeader(out, path, bytes.length);
  await writeChunk(out, bytes);
  await writePadding(out, bytes.length);
}

/**
 * Writes the layout for `roots` to `out` (not ended): oci-layout, index.json, then every blob the roots reach
 * that is not in `have`. `onBytes` sees blob bytes as they go.
 */
export async function writeBundle(
  deps: ClosureDeps,
  roots: readonly ExportRoot[],
  have: ReadonlySet<string>,
  out: Writable,
  onBytes: (bytes: number) => void = () => undefined,
): Promise<ExportSummary> {
  const digests = await closure(deps, roots);
  const index: LayoutIndex = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: roots.map((r) => ({ mediaType: r.mediaType, digest: r.digest, size: r.size, annotations: { [REF_NAME]: r.ref } })),
  };
  await writeFile(out, 'oci-layout', Buffer.from(OCI_LAYOUT));
  await writeFile(out, 'index.json', Buffer.from(JSON.stringify(index)));
  let blobs = 0;
  let bytes = 0;
  let skipped = 0;
  for (const [digest, size] of digests) {
    if (have.has(digest)) {
      skipped++;
      continue;
    }
    await writeBlob(deps.store, out, digest, size, onBytes);
    blobs++;
    bytes += size;
  }
  await writeChunk(out, Buffer.alloc(BLOCK * 2)); // end of archive
  return { images: roots.length, blobs, bytes, skipped };
}

async function writeBlob(store: ClosureDeps['store'], out: Writable, digest: Digest, size: number, onBytes: (bytes: number) => void): Promise<void> {
  const opened = await store.open(digest);
  if (!opened) throw new Error(`${digest} vanished from the store during the export`);
  if (opened.size !== size) {
    await opened.close();
    throw new Error(`${digest}: the index says ${size} bytes, the file has ${opened.size} (run regmirror fsck)`);
  }
  await writeHeader(out, `blobs/${digestAlgorithm(digest)}/${digestHex(digest)}`, size);
  const body = opened.read();
  body.on('data', (chunk: Buffer) => onBytes(chunk.length));
  await pipeline(body, out, { end: false });
  await writePadding(out, size);
}
