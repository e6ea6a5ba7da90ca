// The client files `regmirror client-config` makes, as pure functions of the mirror's URL and its registries:
// containerd hosts.toml per registry, one registries.conf for podman/CRI-O/skopeo/buildah, k3s registries.yaml,
// and dockerd's daemon.json. No I/O here, so every format is unit tested byte for byte.
import { DOCKER_HUB } from '../registry/reference.js';

export const CLIENTS = ['containerd', 'podman', 'k3s', 'docker'] as const;
export type Client = (typeof CLIENTS)[number];

/** What a client file needs of a configured registry (config.registries). */
export interface RegistryTarget {
  /** As clients name it: `docker.io`, `ghcr.io`, `registry.internal.example:5000`. */
  name: string;
  /** The registry's own origin, or "none" (offline mirror). */
  url: string;
}

export interface ClientFile {
  /** Relative to the directory the client reads (`/etc/containerd/certs.d`, `/etc/containers`, …). */
  path: string;
  text: string;
}

export interface ClientConfig {
  files: ClientFile[];
  /** What the files cannot say (JSON has no comments): printed as `# …` lines after them. */
  notes: string[];
}

/**
 * The mirror's URL as clients reach it: an http(s) origin with no path, query or credentials (clients add
 * `/v2/` themselves). undefined for anything else.
 */
export function parseMirrorUrl(text: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  const extra = url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '';
  return (url.protocol === 'http:' || url.protocol === 'https:') && !extra ? url : undefined;
}

export function clientConfig(client: Client, mirror: URL, registries: readonly RegistryTarget[]): ClientConfig {
  switch (client) {
    case 'containerd':
      return { files: registries.map((r) => containerdHosts(r, mirror)), notes: [] };
    case 'podman':
      return registriesConf(mirror, registries);
    case 'k3s':
      return { files: [k3sRegistries(mirror, registries)], notes: [] };
    case 'docker':
      return dockerDaemon(mirror, registries);
  }
}

/** TOML basic strings and YAML double-quoted strings both read a JSON string literal as it is meant. */
const quote = (text: string): string => JSON.stringify(text);

/** Where a client goes when the mirror fails: the configured origin; docker.io's API lives on registry-1. */
function realOrigin(registry: RegistryTarget): string {
  if (registry.url !== 'none') return registry.url;
  return registry.name === DOCKER_HUB ? 'https://registry-1.docker.io' : `https://${registry.name}`;
}

/**
 * A registry name with a port is no path component in Docker's reference grammar (`mirror:5000/host:5000/x`
 * does not parse), so podman and `docker pull` cannot name it through the mirror's path prefix; containerd's
 * `?ns=` can.
 */
const hasPort = (registry: RegistryTarget): boolean => registry.name.includes(':');

/**
 * `<name>/hosts.toml` (containerd docs/hosts.md): the mirror first, the registry itself as the fallback
 * `server`. The directory is the registry as images name it, port included (`registry.example:5000`).
 * containerd sends `?ns=<name>` to a mirror host, which is how regmirror picks the upstream.
 */
export function containerdHosts(registry: RegistryTarget, mirror: URL): ClientFile {
  const lines = [`server = ${quote(realOrigin(registry))}`, '', `[host.${quote(mirror.origin)}]`, '  capabilities = ["pull", "resolve"]'];
  return { path: `${registry.name}/hosts.toml`, text: `${lines.join('\n')}\n` };
}

/**
 * containers-registries.conf(5): per registry a mirror at `<mirror host>/<registry>`, the path prefix that
 * tells regmirror which upstream to ask. Short names search docker.io when it is configured.
 */
export function registriesConf(mirror: URL, registries: readonly RegistryTarget[]): ClientConfig {
  const blocks: string[] = [];
  if (registries.some((r) => r.name === DOCKER_HUB)) blocks.push(`unqualified-search-registries = [${quote(DOCKER_HUB)}]`);
  for (const registry of registries.filter((r) => !hasPort(r))) {
    const lines = ['[[registry]]', `prefix = ${quote(registry.name)}`, `location = ${quote(registry.name)}`, ''];
    lines.push('[[registry.mirror]]', `location = ${quote(`${mirror.host}/${registry.name}`)}`);
    if (mirror.protocol === 'http:') lines.push('insecure = true');
    blocks.push(lines.join('\n'));
  }
  return { files: [{ path: 'registries.conf', text: `${blocks.join('\n\n')}\n` }], notes: portNotes(registries, 'podman') };
}

/** k3s `registries.yaml`: one mirror endpoint per registry; k3s writes the containerd hosts.toml from it. */
export function k3sRegistries(mirror: URL, registries: readonly RegistryTarget[]): ClientFile {
  const lines = ['mirrors:'];
  for (const registry of registries) lines.push(`  ${quote(registry.name)}:`, '    endpoint:', `      - ${quote(mirror.origin)}`);
  return { path: 'registries.yaml', text: `${lines.join('\n')}\n` };
}

/**
 * dockerd's `registry-mirrors` is asked about Docker Hub images only; any other registry is pulled by naming
 * the mirror in the image (`docker pull <mirror>/ghcr.io/owner/image:tag`), which over plain HTTP needs the
 * mirror among `insecure-registries`.
 */
export function dockerDaemon(mirror: URL, registries: readonly RegistryTarget[]): ClientConfig {
  const hub = registries.some((r) => r.name === DOCKER_HUB);
  const daemon = {
    ...(hub ? { 'registry-mirrors': [mirror.origin] } : {}),
    ...(mirror.protocol === 'http:' ? { 'insecure-registries': [mirror.host] } : {}),
  };
  const byName = registries.filter((r) => r.name !== DOCKER_HUB && !hasPort(r));
  const pullByName = byName.length > 0 ? 'pull other registries through the mirror by name:' : '';
  const first = hub ? 'dockerd mirrors only Docker Hub (registry-mirrors)' : 'dockerd mirrors only Docker Hub, which this mirror does not serve';
  const notes = [
    [first, pullByName].filter(Boolean).join('; '),
    ...byName.map((r) => `  docker pull ${mirror.host}/${r.name}/<repository>:<tag>`),
  ];
  notes.push(...portNotes(registries, 'docker pull'));
  return { files: [{ path: 'daemon.json', text: `${JSON.stringify(daemon, null, 2)}\n` }], notes };
}

function portNotes(registries: readonly RegistryTarget[], client: string): string[] {
  return registries
    .filter(hasPort)
    .map((r) => `${r.name}: left out; a registry name with a port cannot be a path prefix, so ${client} reaches it directly (containerd's ?ns= can)`);
}

/** Every file as `# <path>` and its text, then the notes: what the command prints without --output. */
export function formatClientConfig(config: ClientConfig): string {
  const files = config.files.map((f) => `# ${f.path}\n${f.text}`);
  const notes = config.notes.map((n) => `# ${n}\n`).join('');
  return [...files, ...(notes ? [notes] : [])].join('\n');
}
