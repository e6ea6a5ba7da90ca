// The walk from manifests to everything they name: index → platform manifests → config and layers. One walk
// for garbage collection and pins, `ls`, export, import and seed; where they differ (how deep, which misses
// are errors, whether artifact blobs count) is an explicit option, and where content lives is a callback.
import { blobsOf, checkDescriptors, ManifestError, parseManifest, type Descriptor, type Manifest } from './manifest.js';
import type { Digest } from './reference.js';

/** How a node was reached: a root, a platform manifest of an index, or a config, layer or other blob. */
export type NodeRole = 'root' | 'platform' | 'blob';

export interface GraphNode {
  digest: Digest;
  /** The descriptor that named it (for a root: the one the caller gave). */
  descriptor: Descriptor;
  role: NodeRole;
  /** 0 for a root. */
  depth: number;
  /** The root this node was reached from. */
  root: Digest;
}

export interface VisitedNode<T> extends GraphNode {
  /** What `stat` answered; undefined when the content is missing here (and the walk was told to skip it). */
  info: T | undefined;
  /** The parsed manifest, for a node that was read. */
  manifest?: Manifest;
}

export interface WalkOptions<T extends { manifest: boolean }> {
  /** Manifests at this depth or deeper are not read (roots are depth 0): 2 reads an index and its platforms. */
  maxDepth: number;
  /** A missing root, config or layer: `skip` reports it with `info: undefined`, `error` throws MissingContentError. */
  missing: 'skip' | 'error';
  /** A missing platform manifest is skipped whatever `missing` says (that platform was not pulled). */
  platformsOptional: boolean;
  /** Bytes that are not a manifest, or name a bad digest: `skip` follows what parsed, `error` throws ManifestError. */
  badManifest: 'skip' | 'error';
  /** Follow an OCI artifact manifest's `blobs` besides config and layers. */
  artifactBlobs: boolean;
  /** Visit a digest found present once only (else once per path, as a size per image counts it). */
  dedupe: boolean;
  /**
   * With `dedupe`: where the present digests go, and what is skipped (default: a Set of this walk). GC walks root
   * after root into one compact set (cache/digest-set.ts), so that content shared by many images is read once.
   */
  seen?: { has(digest: Digest, role: NodeRole): boolean; add(digest: Digest, role: NodeRole): unknown };
  /** Whether the node is here, and whether it is a manifest; its answer is handed back in VisitedNode.info. */
  stat(node: GraphNode): Promise<T | undefined>;
  /** A present manifest's bytes; undefined: not followed. */
  read(node: GraphNode, info: T): Promise<Buffer | undefined>;
  /**
   * Visits after which the walk stops with WalkLimitError (default: none). For untrusted content (a bundle):
   * without `dedupe`, an index of 3,000 manifests × 3,000 layers is nine million visits.
   */
  maxVisits?: number;
  /** The platform manifests of an index to follow (default: all). */
  selectPlatforms?: (platforms: Descriptor[], index: GraphNode) => Descriptor[];
}

/** Content a walk had to find and did not. */
export class MissingContentError extends Error {
  readonly code = 'CONTENT_MISSING';
  constructor(
    readonly digest: Digest,
    readonly role: NodeRole,
    /** The root it was reached from. */
    readonly root: Digest,
  ) {
    super(`${digest} is missing`);
    this.name = 'MissingContentError';
  }
}

/** A walk that reached `maxVisits`: the content names far more than any real image does. */
export class WalkLimitError extends Error {
  readonly code = 'WALK_LIMIT';
  constructor(readonly limit: number) {
    super(`names more than ${limit} descriptors`);
    this.name = 'WalkLimitError';
  }
}

/**
 * Walks depth first from each root and returns the nodes in post-order: a manifest comes after everything it
 * names (the order an OCI layout is written in). Platform manifests of an index come before its blobs.
 */
export async function walkManifests<T extends { manifest: boolean }>(
  roots: readonly Descriptor[],
  options: WalkOptions<T>,
): Promise<Array<VisitedNode<T>>> {
  const out: Array<VisitedNode<T>> = [];
  const present = options.seen ?? new Set<Digest>();
  // Without `dedupe` a manifest reached by many paths is visited once per path; it is still read and parsed
  // once (content is addressed by digest, so the bytes cannot differ). With `dedupe` the visit itself is skipped.
  const parsed = new Map<Digest, Promise<Manifest | undefined>>();
  const readOnce = (node: GraphNode, info: T): Promise<Manifest | undefined> => {
    if (options.dedupe) return readManifest(node, info, options);
    let manifest = parsed.get(node.digest);
    if (!manifest) parsed.set(node.digest, (manifest = readManifest(node, info, options)));
    return manifest;
  };
  let visits = 0;
  const visit = async (node: GraphNode): Promise<void> => {
    if (options.dedupe && present.has(node.digest, node.role)) return;
    if (options.maxVisits !== undefined && ++visits > options.maxVisits) throw new WalkLimitError(options.maxVisits);
    const info = await options.stat(node);
    if (info === undefined) {
      if (options.missing === 'error' && !(node.role === 'platform' && options.platformsOptional)) {
        throw new MissingContentError(node.digest, node.role, node.root);
      }
      out.push({ ...node, info });
      return;
    }
    present.add(node.digest, node.role);
    const manifest = info.manifest && node.depth < options.maxDepth ? await readOnce(node, info) : undefined;
    if (manifest) {
      const child = (descriptor: Descriptor, role: NodeRole): GraphNode => ({ digest: descriptor.digest, descriptor, role, depth: node.depth + 1, root: node.root });
      const platforms = manifest.manifests ?? [];
      const chosen = options.selectPlatforms && manifest.manifests ? options.selectPlatforms(platforms, node) : platforms;
      for (const d of chosen) await visit(child(d, 'platform'));
      for (const d of blobsOf(manifest, options.artifactBlobs)) await visit(child(d, 'blob'));
    }
    out.push({ ...node, info, ...(manifest ? { manifest } : {}) });
  };
  for (const root of roots) await visit({ digest: root.digest, descriptor: root, role: 'root', depth: 0, root: root.digest });
  return out;
}

async function readManifest<T extends { manifest: boolean }>(node: GraphNode, info: T, options: WalkOptions<T>): Promise<Manifest | undefined> {
  const bytes = await options.read(node, info);
  if (bytes === undefined) return undefined;
  if (options.badManifest === 'skip') {
    try {
      return parseManifest(bytes, node.digest);
    } catch (err) {
      if (err instanceof ManifestError) return undefined;
      throw err;
    }
  }
  const manifest = parseManifest(bytes, node.digest);
  checkDescriptors(manifest, node.digest);
  return manifest;
}
