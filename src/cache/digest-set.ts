// A set of digests at 8 bytes each, for marking what is reachable in a cache of millions of blobs (issue 16,
// point 4): GC and eviction held every reachable digest as a string in a Set (a million: ~150 MiB); this keeps
// the first 64 bits of each hash in an open-addressed table (a million: 16 MiB at most).
//
// Two digests with the same first 64 bits are one entry. A set of reachable content can only err towards keeping:
// unreachable content whose prefix equals a reachable one's stays (about n²/2⁶⁵: 3·10⁻⁸ for a million), and
// reachable content is never reported absent. Do not use it where a false "present" would lose data.
import { digestHex, type Digest } from '../registry/reference.js';

const INITIAL_CAPACITY = 1024;

export class DigestSet {
  private hi: Uint32Array;
  private lo: Uint32Array;
  private mask: number;
  private count = 0;

  constructor(capacity = INITIAL_CAPACITY) {
    let size = INITIAL_CAPACITY;
    while (size < capacity * 2) size *= 2;
    this.hi = new Uint32Array(size);
    this.lo = new Uint32Array(size);
    this.mask = size - 1;
  }

  get size(): number {
    return this.count;
  }

  has(digest: Digest): boolean {
    const [hi, lo] = prefix(digest);
    return this.slot(hi, lo) < 0;
  }

  add(digest: Digest): this {
    const [hi, lo] = prefix(digest);
    const slot = this.slot(hi, lo);
    if (slot < 0) return this;
    this.hi[slot] = hi;
    this.lo[slot] = lo;
    if (++this.count * 2 > this.hi.length) this.grow();
    return this;
  }

  /** The free slot for (hi, lo), or -1 when it is present. Linear probing: the bits are a hash already. */
  private slot(hi: number, lo: number): number {
    for (let i = lo & this.mask; ; i = (i + 1) & this.mask) {
      const h = this.hi[i] as number;
      const l = this.lo[i] as number;
      if (h === 0 && l === 0) return i;
      if (h === hi && l === lo) return -1;
    }
  }

  private grow(): void {
    const { hi, lo } = this;
    this.hi = new Uint32Array(hi.length * 2);
    this.lo = new Uint32Array(lo.length * 2);
    this.mask = this.hi.length - 1;
    for (let i = 0; i < hi.length; i++) {
      const h = hi[i] as number;
      const l = lo[i] as number;
      if (h === 0 && l === 0) continue;
      const slot = this.slot(h, l);
      this.hi[slot] = h;
      this.lo[slot] = l;
    }
  }
}

/** The first 64 bits of the hash as two uint32; (0, 0) marks an empty slot, so that prefix is stored as (0, 1). */
function prefix(digest: Digest): [number, number] {
  const hex = digestHex(digest);
  const hi = Number.parseInt(hex.slice(0, 8), 16) >>> 0;
  const lo = Number.parseInt(hex.slice(8, 16), 16) >>> 0;
  return hi === 0 && lo === 0 ? [0, 1] : [hi, lo];
}

/**
 * What GC and eviction mark reachable: manifests (roots, platform manifests: about one per tag) exactly, blobs
 * as 64-bit prefixes. A walk skips what is already marked, so a prefix collision must never skip a manifest:
 * its layers would go unmarked and be collected. A collision on a blob only keeps what might have gone.
 */
export class ReachableSet {
  private readonly manifests = new Set<Digest>();
  private readonly blobs = new DigestSet();

  get size(): number {
    return this.manifests.size + this.blobs.size;
  }

  /** With a role: whether a walk may skip it. Without: whether it must be kept (either set, erring to keep). */
  has(digest: Digest, role?: string): boolean {
    if (role === 'blob') return this.blobs.has(digest) || this.manifests.has(digest);
    if (role !== undefined) return this.manifests.has(digest);
    return this.manifests.has(digest) || this.blobs.has(digest);
  }

  add(digest: Digest, role?: string): this {
    if (role === 'blob') this.blobs.add(digest);
    else this.manifests.add(digest);
    return this;
  }
}
