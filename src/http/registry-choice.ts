// Which registry a request is for (issue 13): containerd's `?ns=`, a path prefix, or the default; and the
// tags/list next-page Link that leads a client back the same way.
import { RegistryError } from '../registry/errors.js';
import { canonicalRegistry, parseRegistryHost, parseRepository, registryPrefix, type Repository } from '../registry/reference.js';
import type { RegistryFront } from './routes.js';

/**
 * The registry a request is for: containerd's `?ns=`, else a path prefix (`/v2/ghcr.io/owner/image/…`: podman,
 * skopeo and `docker pull mirror/ghcr.io/…`), else the default. One not configured here is NAME_UNKNOWN:
 * never answered from another registry's content.
 */
export function chooseRegistry<R extends RegistryFront>(
  deps: { registries: ReadonlyMap<string, R>; defaultRegistry: R },
  name: string,
  query: string,
): { mirror: R; repo: Repository; prefixed: boolean } {
  // containerd names the registry in ?ns=: a dotted first component is then the repository's own
  // (gcr.io/google.com/project/image is `google.com/project/image` on gcr.io), unless it names that registry
  // again (a hosts.toml `override_path` ending in /v2/<registry>).
  const ns = query === '' ? undefined : namespaceOf(query);
  const prefix = ns === undefined ? registryPrefix(name) : samePrefix(name, ns);
  const wanted = ns ?? prefix?.registry;
  const mirror = wanted === undefined ? deps.defaultRegistry : deps.registries.get(wanted);
  // The name is checked before the registry, so that hostile input is NAME_INVALID whatever it names.
  const repo = parseRepository(prefix?.rest ?? name, wanted ?? deps.defaultRegistry.name);
  if (!mirror) {
    throw new RegistryError('NAME_UNKNOWN', `registry ${wanted ?? ''} is not mirrored here`, { detail: { registry: wanted } });
  }
  return { mirror, repo, prefixed: prefix !== undefined };
}

function samePrefix(name: string, ns: string): { registry: string; rest: string } | undefined {
  const slash = name.indexOf('/');
  if (slash === -1 || canonicalRegistry(name.slice(0, slash)) !== ns) return undefined;
  return { registry: ns, rest: name.slice(slash + 1) };
}

/**
 * A next-page Link names a path on upstream (or on the plain repository), relative or absolute: the client must
 * come back here, the same way it came (the path prefix, or `?ns=`).
 */
export function nextPageHere(link: string, registry: string, prefixed: boolean, query: string): string | undefined {
  const target = /<([^>]*)>/.exec(link)?.[1];
  if (target === undefined) return undefined;
  const url = new URL(target, 'http://mirror');
  if (!url.pathname.startsWith('/v2/')) return undefined;
  if (prefixed) url.pathname = `/v2/${registry}/${url.pathname.slice('/v2/'.length)}`;
  else if (query !== '' && new URLSearchParams(query).has('ns')) url.searchParams.set('ns', registry);
  return `<${url.pathname}${url.search}>; rel="next"`;
}

/** containerd's `?ns=<registry>`, with Docker Hub's other names folded into docker.io. */
function namespaceOf(query: string): string | undefined {
  const ns = new URLSearchParams(query).get('ns');
  return ns === null ? undefined : parseRegistryHost(ns);
}
