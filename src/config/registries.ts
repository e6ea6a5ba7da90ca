// The registries one mirror serves, resolved from the config: each `upstreams` entry with what it leaves out taken
// from `upstream` and `tags`; without `upstreams`, Docker Hub alone. Computed once where the mirror is wired.
import { canonicalRegistry, DOCKER_HUB } from '../registry/reference.js';
import type { Config, TagsConfig, UpstreamConfig } from './schema.js';

const DOCKER_HUB_URL = 'https://registry-1.docker.io';

export interface RegistryConfig extends UpstreamConfig {
  /** Tag TTL and rules of this registry; the other tag settings are the mirror's. */
  tags: TagsConfig;
  /** No upstream at all (url "none", or the whole mirror offline): what was seeded or imported is served. */
  offline: boolean;
}

export interface Registries {
  list: readonly RegistryConfig[];
  /** Asked when a request names no registry: docker.io when configured (dockerd mirrors only Docker Hub), else the first. */
  defaultName: string;
}

export function registriesOf(config: Config): Registries {
  const { upstream, tags } = config;
  const entries = config.upstreams ?? [{ name: upstream.name }];
  const list = entries.map((entry): RegistryConfig => {
    const { tags: own, ...settings } = entry;
    const name = canonicalRegistry(entry.name);
    // `upstream` is the registry named upstream.name (docker.io unless a single-upstream config renamed it).
    const isUpstream = name === upstream.name;
    const url = entry.url ?? (isUpstream ? upstream.url : name === DOCKER_HUB ? DOCKER_HUB_URL : `https://${name}`);
    return {
      ...upstream,
      ...settings,
      name,
      // Who may receive credentials is each registry's own: upstream's account and trusted realms stay upstream's.
      credentials: entry.credentials ?? (isUpstream ? upstream.credentials : undefined),
      authRealms: entry.authRealms ?? (isUpstream ? upstream.authRealms : []),
      // Repository paths mean something on one registry only: upstream.allow is the registry upstream names.
      allow: entry.allow ?? (isUpstream ? upstream.allow : undefined),
      url: upstream.url === 'none' ? 'none' : url,
      tags: { ...tags, ttl: own?.ttl ?? tags.ttl, rules: own?.rules ?? tags.rules },
      offline: upstream.url === 'none' || url === 'none',
    };
  });
  const defaultName = list.find((r) => r.name === DOCKER_HUB)?.name ?? (list[0] as RegistryConfig).name;
  return { list, defaultName };
}
