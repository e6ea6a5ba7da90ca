// What a blob HEAD needs (presence, size, media type) for every sha256 record, in typed arrays, so that a HEAD
// never waits for LevelDB (issue 16, point 4: at a million blobs a HEAD for a digest outside the hot records
// read the index through libuv's pool; the first touch of 5,500 blobs put blob-HEAD p99 at 5.6× the empty
// cache's, against 0.6× once they were all hot).
//
// Exact, unlike ReachableSet: the whole 32-byte hash is kept, so a digest that shares a prefix with a stored one
// is never reported present. 42 bytes a record (hash, size as float64, type code); a million records: 40 MiB.
//
//   base     sorted by hash, as the index iterates (LevelDB keys are ordered; hex order is byte order), searched
//            by bisection; a removed record's type code is set to 0 in place
//   added    records put since the base was built, not in it (a Map); past a bound the table is built again
//            in the background while this one keeps answering
//
// Built by scanning the index after open, in chunks that let serving run in between (`BlobIndex.buildTable`),
// so opening still reads nothing proportional to the cache. Until it is ready, and for other algorithms, the
// caller asks the index.
import type { Digest } from '../registry/reference.js';

export interface BlobMeta {
  size: number;
  mediaType: string;
  manifest: boolean;
}

const HASH = 32;
const PREFIX = 'sha256:';
/** The type code's high bit: the content is a manifest. 0 is "no record". */
const MANIFEST_BIT = 0x8000;
const MAX_TYPES = 0x7ffe;

/** The 32 hash bytes of a sha256 digest, or undefined for another algorithm (or a malformed key). */
export function sha256Bytes(digest: string): Buffer | undefined {
  if (digest.length !== PREFIX.length + 64 || !digest.startsWith(PREFIX)) return undefined;
  const bytes = Buffer.from(digest.slice(PREFIX.length), 'hex');
  return bytes.length === HASH ? bytes : undefined;
}

/** Accumulates the base in index order; `finish` makes the table. */
export class BlobTableBuilder {
  private hashes: Buffer;
  private sizes: Float64Array;
  private codes: Uint16Array;
  private count = 0;
  private readonly types: MediaTypes = new MediaTypes();
  /** Records whose media type did not fit a code: kept as added. */
  private readonly extra = new Map<Digest, BlobMeta>();

  constructor(expected: number) {
    const capacity = Math.max(16, expected);
    this.hashes = Buffer.allocUnsafeSlow(capacity * HASH);
    this.sizes = new Float64Array(capacity);
    this.codes = new Uint16Array(capacity);
  }

  /** Keys must come in increasing order (the index's); returns false when one does not (then the build stops). */
  add(digest: Digest, meta: BlobMeta): boolean {
    const hash = sha256Bytes(digest);
    if (!hash) return true; // another algorithm: the index answers for it
    if (this.count > 0 && this.hashes.compare(hash, 0, HASH, (this.count - 1) * HASH, this.count * HASH) >= 0) return false;
    const type = this.types.code(meta.mediaType);
    if (type === undefined) {
      this.extra.set(digest, meta);
      return true;
    }
    if (this.count === this.sizes.length) this.grow();
    hash.copy(this.hashes, this.count * HASH);
    this.sizes[this.count] = meta.size;
    this.codes[this.count] = type | (meta.manifest ? MANIFEST_BIT : 0);
    this.count++;
    return true;
  }

  finish(): BlobTable {
    // Views, not copies: the capacity is the index's record count, so there is little to trim, and a copy
    // doubled the table's memory at its peak (freed, but not given back to the system: RSS at rest).
    const n = this.count;
    return new BlobTable(this.hashes.subarray(0, n * HASH), this.sizes.subarray(0, n), this.codes.subarray(0, n), this.types, this.extra);
  }

  private grow(): void {
    const capacity = this.sizes.length * 2;
    const hashes = Buffer.allocUnsafeSlow(capacity * HASH);
    this.hashes.copy(hashes);
    this.hashes = hashes;
    const sizes = new Float64Array(capacity);
    sizes.set(this.sizes);
    this.sizes = sizes;
    const codes = new Uint16Array(capacity);
    codes.set(this.codes);
    this.codes = codes;
  }
}

export class BlobTable {
  constructor(
    private readonly hashes: Buffer,
    private readonly sizes: Float64Array,
    private readonly codes: Uint16Array,
    private readonly types: MediaTypes,
    private readonly added: Map<Digest, BlobMeta>,
  ) {}

  /** Records in the base (removed ones included) plus those added since. */
  get entries(): number {
    return this.sizes.length + this.added.size;
  }

  /** Added since the base was built. */
  get addedCount(): number {
    return this.added.size;
  }

  /** Bytes of memory the table holds (the Map's entries estimated at 200 bytes each). */
  get bytes(): number {
    return this.hashes.length + this.sizes.byteLength + this.codes.byteLength + this.added.size * 200;
  }

  /** Whether the table can answer for this digest (sha256); for others ask the index. */
  covers(digest: Digest): boolean {
    return digest.startsWith(PREFIX);
  }

  /** The record's meta, or undefined when there is no record. Only for digests the table covers. */
  get(digest: Digest): BlobMeta | undefined {
    const added = this.added.get(digest);
    if (added) return added;
    const hash = sha256Bytes(digest);
    const at = hash ? this.find(hash) : -1;
    if (at < 0) return undefined;
    const code = this.codes[at] as number;
    if (code === 0) return undefined;
    return { size: this.sizes[at] as number, mediaType: this.types.name(code & ~MANIFEST_BIT), manifest: (code & MANIFEST_BIT) !== 0 };
  }

  set(digest: Digest, meta: BlobMeta): void {
    const hash = sha256Bytes(digest);
    if (!hash) return;
    const at = this.find(hash);
    const type = this.types.code(meta.mediaType);
    if (at >= 0 && type !== undefined) {
      this.sizes[at] = meta.size;
      this.codes[at] = type | (meta.manifest ? MANIFEST_BIT : 0);
      this.added.delete(digest);
      return;
    }
    if (at >= 0) this.codes[at] = 0;
    this.added.set(digest, meta);
  }

  delete(digest: Digest): void {
    this.added.delete(digest);
    const hash = sha256Bytes(digest);
    const at = hash ? this.find(hash) : -1;
    if (at >= 0) this.codes[at] = 0;
  }

  /** Bisection over the sorted hashes: the position, or -1. */
  private find(hash: Buffer): number {
    let lo = 0;
    let hi = this.sizes.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const c = this.hashes.compare(hash, 0, HASH, mid * HASH, mid * HASH + HASH);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
}

/** Media types by a small code (a cache holds a few dozen): 1…MAX_TYPES; undefined past that. */
class MediaTypes {
  private readonly names: string[] = [''];
  private readonly codes = new Map<string, number>();

  code(name: string): number | undefined {
    const known = this.codes.get(name);
    if (known !== undefined) return known;
    if (this.names.length > MAX_TYPES) return undefined;
    this.names.push(name);
    this.codes.set(name, this.names.length - 1);
    return this.names.length - 1;
  }

  name(code: number): string {
    return this.names[code] ?? 'application/octet-stream';
  }
}
