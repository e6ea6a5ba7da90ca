// Manifest JSON, parsed once into typed descriptors (image-spec "descriptor", "image-index", "image-manifest";
// Docker image manifest v2.2). An index (OCI index, Docker manifest list) names platform manifests; an image
// manifest names its config and layers; an OCI artifact manifest names `blobs`. The only place that parses
// manifest JSON: the graph walk (manifest-graph.ts), fsck, seed, import and the upstream client read this.
import { DOCKER_MANIFEST_V1_SIGNED, OCI_INDEX, OCI_MANIFEST } from './media-types.js';
import { isDigest, type Digest } from './reference.js';

export interface Platform {
  os?: string;
  architecture?: string;
  variant?: string;
}

/** What a manifest (or an OCI layout's index.json) says about content it names. */
export interface Descriptor {
  mediaType?: string;
  digest: Digest;
  /** Required by the spec, yet kept optional: content that omits it is still walked by its digest. */
  size?: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

export interface Manifest {
  schemaVersion: number | undefined;
  /** The `mediaType` field, when the manifest declares one. */
  mediaType: string | undefined;
  /** The platform manifests of an index; undefined when the JSON has no `manifests` list. */
  manifests: Descriptor[] | undefined;
  config: Descriptor | undefined;
  /** Undefined when the JSON has no `layers` list. */
  layers: Descriptor[] | undefined;
  /** An OCI artifact manifest's `blobs`. */
  blobs: Descriptor[];
  /** A schema 1 manifest (`fsLayers`; its blobs are named by `blobSum` and not followed). */
  fsLayers: boolean;
  /** The `digest` values of entries that are not descriptors with a valid digest: left out of the lists above. */
  invalid: unknown[];
}

export type ManifestProblem = 'not-json' | 'not-object' | 'bad-descriptor';

/** Bytes that are not a manifest: not JSON, not a JSON object, or (from `checkDescriptors`) a bad descriptor. */
export class ManifestError extends Error {
  readonly code = 'BAD_MANIFEST';
  constructor(
    readonly problem: ManifestProblem,
    /** What is wrong, e.g. `not JSON`; the message adds the manifest's digest when known. */
    readonly reason: string,
    /** The manifest's own digest, when the caller knows it. */
    readonly digest?: Digest,
    options?: { cause?: unknown },
  ) {
    super(`manifest${digest ? ` ${digest}` : ''}: ${reason}`, options);
    this.name = 'ManifestError';
  }
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function descriptor(value: unknown, invalid: unknown[]): Descriptor | undefined {
  const d = record(value);
  if (!d || typeof d.digest !== 'string' || !isDigest(d.digest)) {
    invalid.push(d?.digest);
    return undefined;
  }
  const platform = platformOf(d.platform);
  const annotations = stringsOf(d.annotations);
  return {
    ...(typeof d.mediaType === 'string' ? { mediaType: d.mediaType } : {}),
    digest: d.digest,
    // A size that is no byte count (negative, fractional, 1e300) is as good as none: found by fuzzing (issue 14).
    ...(typeof d.size === 'number' && Number.isSafeInteger(d.size) && d.size >= 0 ? { size: d.size } : {}),
    ...(platform ? { platform } : {}),
    ...(annotations ? { annotations } : {}),
  };
}

/** Annotations are string → string (image-spec); other values are dropped, not handed on as strings. */
function stringsOf(value: unknown): Record<string, string> | undefined {
  const r = record(value);
  return r && Object.fromEntries(Object.entries(r).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}

function platformOf(value: unknown): Platform | undefined {
  const p = record(value);
  if (!p) return undefined;
  const text = (field: string): string | undefined => (typeof p[field] === 'string' ? p[field] : undefined);
  const [os, architecture, variant] = [text('os'), text('architecture'), text('variant')];
  return { ...(os ? { os } : {}), ...(architecture ? { architecture } : {}), ...(variant ? { variant } : {}) };
}

function descriptors(value: unknown, invalid: unknown[]): Descriptor[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.map((v) => descriptor(v, invalid)).filter((d) => d !== undefined);
}

/** Parses manifest bytes; throws ManifestError when they are not a JSON object. Bad descriptors land in `invalid`. */
export function parseManifest(bytes: Buffer | string, digest?: Digest): Manifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof bytes === 'string' ? bytes : bytes.toString('utf8'));
  } catch (cause) {
    throw new ManifestError('not-json', 'not JSON', digest, { cause });
  }
  const json = record(parsed);
  if (!json) throw new ManifestError('not-object', 'not a JSON object', digest);
  const invalid: unknown[] = [];
  return {
    schemaVersion: typeof json.schemaVersion === 'number' ? json.schemaVersion : undefined,
    mediaType: typeof json.mediaType === 'string' ? json.mediaType : undefined,
    manifests: descriptors(json.manifests, invalid),
    config: json.config ? descriptor(json.config, invalid) : undefined,
    layers: descriptors(json.layers, invalid),
    blobs: descriptors(json.blobs, invalid) ?? [],
    fsLayers: Array.isArray(json.fsLayers),
    invalid,
  };
}

/** The manifest, or undefined for bytes that are not one (other errors still throw). */
export function tryParseManifest(bytes: Buffer | string): Manifest | undefined {
  try {
    return parseManifest(bytes);
  } catch (err) {
    if (err instanceof ManifestError) return undefined;
    throw err;
  }
}

/** Throws a ManifestError when the manifest named something that is not a descriptor with a valid digest. */
export function checkDescriptors(manifest: Manifest, digest?: Digest): void {
  if (manifest.invalid.length === 0) return;
  throw new ManifestError('bad-descriptor', `names a bad digest ${JSON.stringify(manifest.invalid[0])}`, digest);
}

/** Config and layers of an image manifest, and with `artifactBlobs` an artifact's `blobs`, in that order. */
export function blobsOf(manifest: Manifest, artifactBlobs: boolean): Descriptor[] {
  return [...(manifest.config ? [manifest.config] : []), ...(manifest.layers ?? []), ...(artifactBlobs ? manifest.blobs : [])];
}

export interface ManifestRefs {
  /** Child manifests (of an index). */
  manifests: Digest[];
  /** Config, layers and artifact blobs (of an image or artifact manifest). */
  blobs: Digest[];
}

/** The digests a manifest names, as the garbage collector follows them; none for bytes that are no manifest. */
export function manifestRefs(bytes: Buffer): ManifestRefs {
  const manifest = tryParseManifest(bytes);
  if (!manifest) return { manifests: [], blobs: [] };
  return { manifests: (manifest.manifests ?? []).map((d) => d.digest), blobs: blobsOf(manifest, true).map((d) => d.digest) };
}

/**
 * The media type a stored file declares or has the shape of (for files found on disk without a record), or
 * undefined when it is no manifest.
 */
export function sniffMediaType(manifest: Manifest): string | undefined {
  if (manifest.schemaVersion === 1 && manifest.fsLayers) return DOCKER_MANIFEST_V1_SIGNED;
  if (manifest.schemaVersion !== 2) return undefined;
  const declared = manifest.mediaType;
  if (declared !== undefined && (declared.includes('manifest') || declared === OCI_INDEX)) return declared;
  if (manifest.manifests) return OCI_INDEX;
  if (manifest.config && manifest.layers) return OCI_MANIFEST;
  return undefined;
}
