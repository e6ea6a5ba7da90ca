// What a manifest refers to: an index (OCI index, Docker manifest list) names platform manifests; an image
// manifest names its config and layers (and, for OCI artifacts, `blobs`). The store's garbage collector,
// pins and `ls` walk images with this.
import { isDigest, type Digest } from './reference.js';

export interface ManifestRefs {
  /** Child manifests (of an index). */
  manifests: Digest[];
  /** Config, layers and other blobs (of an image manifest). */
  blobs: Digest[];
}

interface Descriptor {
  digest?: unknown;
}

function digestsOf(list: unknown): Digest[] {
  if (!Array.isArray(list)) return [];
  return list.map((d: Descriptor) => (typeof d?.digest === 'string' && isDigest(d.digest) ? d.digest : undefined)).filter((d) => d !== undefined);
}

/** The digests a manifest names; none for bytes that are not a JSON manifest (never throws). */
export function manifestRefs(bytes: Buffer): ManifestRefs {
  let json: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(bytes.toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null) return { manifests: [], blobs: [] };
    json = parsed as Record<string, unknown>;
  } catch {
    return { manifests: [], blobs: [] };
  }
  return {
    manifests: digestsOf(json.manifests),
    blobs: [...digestsOf(json.config ? [json.config] : []), ...digestsOf(json.layers), ...digestsOf(json.blobs)],
  };
}
