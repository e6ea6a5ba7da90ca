// Manifest media types and Accept negotiation (distribution-spec "Pulling manifests", Docker image manifest v2.2).

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_V1 = 'application/vnd.docker.distribution.manifest.v1+json';
export const DOCKER_MANIFEST_V1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws';

/** The manifest types we negotiate, in a fixed order: a client's accept class is a subset of these. */
export const MANIFEST_TYPES = [
  OCI_INDEX,
  DOCKER_LIST,
  OCI_MANIFEST,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_V1,
  DOCKER_MANIFEST_V1_SIGNED,
] as const;

/**
 * A media type as image-spec's descriptor schema writes RFC 6838 §4.2: `type/subtype` of restricted names, no
 * parameters. Anything else (CR/LF, U+2028, spaces) would break or inject a Content-Type header when served.
 */
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

export function isMediaType(value: string): boolean {
  return MEDIA_TYPE.test(value);
}

/** An index (OCI image index or Docker manifest list): what a multi-platform client wants for a tag. */
export function isIndexType(mediaType: string): boolean {
  return mediaType === OCI_INDEX || mediaType === DOCKER_LIST;
}

/**
 * What a client accepts, reduced to the manifest types we know. Tag records are keyed by `key`, because
 * upstream answers one tag differently per Accept (an index for docker 20+, a single manifest for old clients),
 * and a client must never be handed a type it did not ask for.
 */
export interface AcceptClass {
  /** Stable key: the accepted known types in MANIFEST_TYPES order, or '*' when the client accepts anything. */
  readonly key: string;
  /** The header to send upstream; undefined when the client sent none. */
  readonly header: string | undefined;
  accepts(mediaType: string): boolean;
}

/** Clients send a handful of distinct Accept headers, each on every request: parse each once. */
const PARSED_LIMIT = 256;
const parsed = new Map<string, AcceptClass>();

export function acceptClass(header: string | string[] | undefined): AcceptClass {
  const raw = Array.isArray(header) ? header.join(',') : header;
  const known = parsed.get(raw ?? '');
  if (known) return known;
  const result = parseAccept(raw);
  if (parsed.size >= PARSED_LIMIT) parsed.clear();
  parsed.set(raw ?? '', result);
  return result;
}

/** The class of a request for exactly one media type (a recorded tag's manifest fetched by digest); not memoised. */
export function acceptOnly(mediaType: string): AcceptClass {
  return parseAccept(mediaType);
}

function parseAccept(raw: string | undefined): AcceptClass {
  const types = new Set((raw ?? '').split(',').map(acceptedType).filter((t) => t !== undefined));
  if (types.size === 0 && (raw ?? '').trim() === '') {
    return { key: '*', header: undefined, accepts: () => true };
  }
  if (types.has('*/*')) return { key: '*', header: raw, accepts: () => true };
  const accepts = (mediaType: string) => types.has(mediaType) || types.has(`${mediaType.split('/')[0]}/*`);
  const known = MANIFEST_TYPES.filter(accepts);
  const key = known.length > 0 ? known.map((t) => MANIFEST_TYPES.indexOf(t)).join('') : 'none';
  return { key, header: raw, accepts };
}

/** One Accept element's media range, lowercased; undefined when empty or refused with q=0 (RFC 9110 §12.4.2). */
function acceptedType(part: string): string | undefined {
  const [type = '', ...params] = part.split(';').map((p) => p.trim().toLowerCase());
  if (type === '') return undefined;
  const q = params.find((p) => p.startsWith('q='));
  if (q !== undefined && Number(q.slice(2)) === 0) return undefined;
  return type;
}

/** Every manifest type: what a seed takes, and what /blobs/ asks for when a client names a manifest's digest. */
export const ANY_MANIFEST: AcceptClass = parseAccept(MANIFEST_TYPES.join(', '));
