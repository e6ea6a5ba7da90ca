// Repository names, tags and digests: validated against the distribution grammar, normalized the Docker Hub way.
import { RegistryError } from './errors.js';

/** A validated, normalized repository path such as `library/alpine`. */
export type Repository = string & { readonly __brand: 'Repository' };
/** A validated tag such as `3.19`. */
export type Tag = string & { readonly __brand: 'Tag' };
/** A validated digest such as `sha256:<64 hex>`. */
export type Digest = string & { readonly __brand: 'Digest' };

export type DigestAlgorithm = 'sha256' | 'sha512';

// distribution reference grammar: path-component := alpha-numeric (separator alpha-numeric)*,
// separator := [_.] | '__' | [-]+. Lowercase only; no empty components, so `..` and `//` never match.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const MAX_NAME_LENGTH = 255;
/** A registry host as in a reference: DNS labels (or localhost), optionally with a port. */
const REGISTRY_HOST = /^[A-Za-z0-9]+(?:[.-][A-Za-z0-9]+)*(?::\d{1,5})?$/;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/**
 * The grammar, and a host an upstream URL can name as written (found by fuzzing, issue 14): a port up to 65535,
 * and a numeric last label only in a dotted quad (URL reads `1.2` or `010.0.0.1` as other IPv4 addresses).
 */
function isHostSyntax(text: string): boolean {
  if (!REGISTRY_HOST.test(text)) return false;
  const [name = '', port] = text.split(':');
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return false;
  return !/^\d+$/.test(name.slice(name.lastIndexOf('.') + 1)) || IPV4.test(name);
}

/**
 * Parses a repository name as it appears in a /v2/<name>/ path and normalizes Docker Hub's official images:
 * `alpine` means `library/alpine` (on docker.io only). Anything not in the grammar (percent-encoding, `..`,
 * backslashes, empty components, uppercase) is NAME_INVALID, so no name can ever address a path outside the
 * data directory.
 */
export function parseRepository(name: string, registry: string = DOCKER_HUB): Repository {
  const components = name.split('/');
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || !components.every((c) => COMPONENT.test(c))) {
    throw new RegistryError('NAME_INVALID', 'invalid repository name', { detail: { name: name.slice(0, 300) } });
  }
  const normalized = components.length === 1 && registry === DOCKER_HUB ? `library/${name}` : name;
  if (normalized.length > MAX_NAME_LENGTH) {
    throw new RegistryError('NAME_INVALID', 'repository name too long', { detail: { name } });
  }
  return normalized as Repository;
}

export function isDigest(value: string): value is Digest {
  return DIGEST.test(value);
}

export function parseDigest(value: string): Digest {
  if (!isDigest(value)) {
    throw new RegistryError('DIGEST_INVALID', 'invalid digest', { detail: { digest: value.slice(0, 200) } });
  }
  return value;
}

export function parseTag(value: string): Tag {
  if (!TAG.test(value)) {
    throw new RegistryError('TAG_INVALID', 'invalid tag', { detail: { tag: value.slice(0, 200) } });
  }
  return value as Tag;
}

/** A manifest reference is a digest when it looks like one (`:` cannot appear in a tag), else a tag. */
export function parseManifestReference(value: string): { tag: Tag } | { digest: Digest } {
  if (value.includes(':')) {
    // Unknown algorithms are rejected rather than passed upstream: we could not verify what comes back.
    return { digest: parseDigest(value) };
  }
  return { tag: parseTag(value) };
}

export function digestAlgorithm(digest: Digest): DigestAlgorithm {
  return digest.startsWith('sha512:') ? 'sha512' : 'sha256';
}

export function digestHex(digest: Digest): string {
  return digest.slice(digest.indexOf(':') + 1);
}

/** Docker Hub's name in references and tag records. */
export const DOCKER_HUB = 'docker.io';
/** Every host name Docker Hub goes by: references and containerd's `?ns=` may use any of them. */
export const DOCKER_HUB_ALIASES: ReadonlySet<string> = new Set([DOCKER_HUB, 'registry-1.docker.io', 'index.docker.io']);

/** An image reference as users write it: `alpine:3.19`, `docker.io/library/nginx@sha256:…`, `ghcr.io/o/r:1`. */
export interface ImageReference {
  /** Registry host; `docker.io` when none is written. */
  registry: string;
  repo: Repository;
  tag?: Tag;
  digest?: Digest;
  /** Normalised text: registry/repo:tag or registry/repo@digest (a tag is dropped when a digest is given). */
  canonical: string;
}

/**
 * Parses a reference the way docker does: the first component is a registry when it has a `.` or `:` or is
 * `localhost`; `index.docker.io` is `docker.io`; no tag and no digest means `latest`. Errors are RegistryErrors
 * (NAME_INVALID, TAG_INVALID, DIGEST_INVALID) whose message names the problem.
 */
export function parseImageReference(text: string): ImageReference {
  const input = text.trim();
  const at = input.indexOf('@');
  const digest = at === -1 ? undefined : parseDigest(input.slice(at + 1));
  let rest = at === -1 ? input : input.slice(0, at);
  let tag: Tag | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = parseTag(rest.slice(colon + 1));
    rest = rest.slice(0, colon);
  }
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  const hasRegistry = isRegistryHost(first);
  if (hasRegistry && !isHostSyntax(first)) {
    throw new RegistryError('NAME_INVALID', 'invalid registry host', { detail: { name: input.slice(0, 300) } });
  }
  let registry = hasRegistry ? first.toLowerCase() : DOCKER_HUB;
  if (DOCKER_HUB_ALIASES.has(registry)) registry = DOCKER_HUB;
  const repo = parseRepository(hasRegistry ? rest.slice(slash + 1) : rest, registry);
  if (!digest && !tag) tag = 'latest' as Tag;
  const canonical = digest ? `${registry}/${repo}@${digest}` : `${registry}/${repo}:${tag as string}`;
  return { registry, repo, ...(tag && !digest ? { tag } : {}), ...(digest ? { digest } : {}), canonical };
}

/** Docker Hub's other names (registry-1.docker.io, index.docker.io) are docker.io; host names are lowercase. */
export function canonicalRegistry(host: string): string {
  const lower = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(lower) ? DOCKER_HUB : lower;
}

/**
 * `ghcr.io/owner/image` → the registry and the rest; undefined when the name starts with no registry host. A
 * first component that looks like a host (a `.` or `:`) but is not one is NAME_INVALID, never Docker Hub's.
 */
export function registryPrefix(name: string): { registry: string; rest: string } | undefined {
  const slash = name.indexOf('/');
  if (slash === -1) return undefined;
  const first = name.slice(0, slash);
  if (!isRegistryHost(first)) return undefined;
  return { registry: parseRegistryHost(first), rest: name.slice(slash + 1) };
}

/** A registry host as a client names one (a path prefix, containerd's `?ns=`), canonical; else NAME_INVALID. */
export function parseRegistryHost(text: string): string {
  if (!isHostSyntax(text) || text.length > MAX_NAME_LENGTH) {
    throw new RegistryError('NAME_INVALID', 'invalid registry host', { detail: { registry: text.slice(0, 300) } });
  }
  return canonicalRegistry(text);
}

/** Docker's reference grammar: a first path component with a `.` or `:`, or `localhost`, names a registry. */
export function isRegistryHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}
