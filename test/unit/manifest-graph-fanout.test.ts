// The walk against a fan-out (issue 14, finding 9): one manifest named from thousands of places is read once,
// and `maxVisits` stops a walk over untrusted content that would otherwise visit millions of paths.
import { describe, expect, it } from 'vitest';
import { walkManifests, WalkLimitError, type GraphNode, type WalkOptions } from '../../src/registry/manifest-graph.js';
import { OCI_INDEX, OCI_MANIFEST } from '../../src/registry/media-types.js';
import type { Digest } from '../../src/registry/reference.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;

/** index d('f') → 3,000 × manifest d('a') → config d('c') and 3,000 × layer d('1'). */
function fanOut(platforms = 3000, layers = 3000) {
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { digest: d('c') }, layers: Array(layers).fill({ digest: d('1') }) }));
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: Array(platforms).fill({ digest: d('a') }) }));
  const bytes = new Map([[d('f'), index], [d('a'), manifest]]);
  const reads: Digest[] = [];
  const hooks: Pick<WalkOptions<{ manifest: boolean }>, 'stat' | 'read'> = {
    stat: (node: GraphNode) => Promise.resolve({ manifest: bytes.has(node.digest) }),
    read: (node: GraphNode) => {
      reads.push(node.digest);
      return Promise.resolve(bytes.get(node.digest));
    },
  };
  return { hooks, reads };
}

const base = { maxDepth: 3, missing: 'error', platformsOptional: true, badManifest: 'error', artifactBlobs: false } as const;

describe('walkManifests over a fan-out', () => {
  it('visits each digest once with dedupe, in bounded time', async () => {
    const { hooks, reads } = fanOut();
    const started = Date.now();
    const nodes = await walkManifests([{ digest: d('f') }], { ...base, dedupe: true, maxVisits: 1_000_000, ...hooks });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(new Set(nodes.map((n) => n.digest))).toEqual(new Set([d('f'), d('a'), d('c'), d('1')]));
    expect(reads).toEqual([d('f'), d('a')]);
  });

  it('reads and parses a manifest reached by many paths once without dedupe', async () => {
    const { hooks, reads } = fanOut(200, 10);
    const nodes = await walkManifests([{ digest: d('f') }], { ...base, dedupe: false, ...hooks });
    expect(nodes).toHaveLength(1 + 200 * 12);
    expect(reads).toEqual([d('f'), d('a')]);
  });

  it('stops with WalkLimitError after maxVisits', async () => {
    const { hooks } = fanOut();
    const started = Date.now();
    await expect(walkManifests([{ digest: d('f') }], { ...base, dedupe: false, maxVisits: 100_000, ...hooks })).rejects.toBeInstanceOf(WalkLimitError);
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
