// The two structures that keep GC and eviction's memory independent of the cache's size (issue 16, point 4):
// DigestSet (reachable digests in 8 bytes each) and OldestFirst (eviction's choice without a sort of the index).
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DigestSet, ReachableSet } from '../../src/cache/digest-set.js';
import { OldestFirst, type EvictionCandidate } from '../../src/cache/oldest-first.js';
import type { Digest } from '../../src/registry/reference.js';

const digestOf = (n: number): Digest => `sha256:${createHash('sha256').update(String(n)).digest('hex')}` as Digest;

describe('DigestSet', () => {
  it('finds every digest added through many growths, and none of the others', () => {
    const set = new DigestSet();
    for (let i = 0; i < 50_000; i++) set.add(digestOf(i));
    set.add(digestOf(7)); // again: counted once
    expect(set.size).toBe(50_000);
    for (let i = 0; i < 50_000; i++) expect(set.has(digestOf(i))).toBe(true);
    for (let i = 50_000; i < 60_000; i++) expect(set.has(digestOf(i))).toBe(false);
  });

  it('keeps a digest whose first 64 bits are zero (the empty-slot mark) and tells sha256 from sha512 by hash only', () => {
    const zero = `sha256:${'0'.repeat(16)}${'a'.repeat(48)}` as Digest;
    const set = new DigestSet().add(zero);
    expect(set.has(zero)).toBe(true);
    expect(set.has(`sha256:${'0'.repeat(15)}2${'a'.repeat(48)}` as Digest)).toBe(false);
    // Same first 64 bits: one entry. Only ever errs towards "present", which for GC means "kept".
    expect(set.has(`sha512:${'0'.repeat(16)}${'a'.repeat(112)}` as Digest)).toBe(true);
  });
});

describe('OldestFirst', () => {
  it('chooses what sorting every record by access time and taking them until the bytes are reached would', () => {
    const candidate = fc.record({ size: fc.integer({ min: 0, max: 1000 }), at: fc.integer({ min: 0, max: 1_000_000 }) });
    fc.assert(
      fc.property(fc.uniqueArray(candidate, { selector: (c) => c.at, maxLength: 200 }), fc.integer({ min: 1, max: 50_000 }), (records, target) => {
        const all: EvictionCandidate[] = records.map((r, i) => ({ ...r, digest: digestOf(i) }));
        const oldest = new OldestFirst(target);
        for (const c of all) oldest.offer(c);
        const sorted = [...all].sort((a, b) => a.at - b.at);
        const expected: EvictionCandidate[] = [];
        let bytes = 0;
        for (const c of sorted) {
          if (bytes >= target) break;
          expected.push(c);
          bytes += c.size;
        }
        // Zero-byte records at the end of the prefix may be dropped or kept: they free nothing.
        const nonEmpty = (list: EvictionCandidate[]) => list.filter((c) => c.size > 0).map((c) => c.digest);
        expect(nonEmpty(oldest.take())).toEqual(nonEmpty(expected));
      }),
    );
  });
});

describe('ReachableSet', () => {
  // Two digests with the same first 64 bits: one collision, made on purpose.
  const layer = `sha256:${'ab'.repeat(8)}${'0'.repeat(48)}` as Digest;
  const manifest = `sha256:${'ab'.repeat(8)}${'1'.repeat(48)}` as Digest;

  it('never lets a blob prefix collision skip a manifest (its layers would go unmarked and be collected)', () => {
    const set = new ReachableSet();
    set.add(layer, 'blob');
    expect(set.has(manifest, 'root')).toBe(false);
    expect(set.has(manifest, 'platform')).toBe(false);
    // A blob that collides is only kept (erring to keep), and without a role both are kept.
    expect(set.has(manifest, 'blob')).toBe(true);
    expect(set.has(manifest)).toBe(true);
    set.add(manifest, 'root');
    expect(set.has(manifest, 'root')).toBe(true);
    expect(set.size).toBe(2);
  });
});
