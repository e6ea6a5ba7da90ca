// What the status page says about the configuration: a list of chosen fields, never the config itself, so a
// key added later (a password, a token) cannot reach the page by accident. No credentials, no htpasswd path
// contents, no admin.token: only whether they are set.
import type { RegistryConfig } from '../config/registries.js';
import type { Config } from '../config/schema.js';

export interface ConfigSummary {
  listen: string;
  dataDir: string;
  tls: boolean;
  /** Client authentication (htpasswd) on; `metrics`: /metrics asks for it too. */
  auth: { enabled: boolean; metrics: boolean };
  registries: Array<{ name: string; url: string; offline: boolean; tagTtlSeconds: number; account: boolean; allow: string[] | null }>;
  tags: { ttlSeconds: number; maxStaleSeconds: number; staleWhileRevalidate: boolean; keepDeleted: boolean };
  cache: { quotaBytes: number | null; highWatermark: number; lowWatermark: number; gcIntervalSeconds: number | null; gcGraceSeconds: number; configPins: number };
  rateLimit: { reserve: number; perClient: string };
  /** Administration over the network (admin.token set); the token itself is never shown. */
  admin: { socket: boolean; network: boolean };
}

const seconds = (ms: number): number => Math.round(ms / 1000);

export function configSummary(config: Config, registries: readonly RegistryConfig[]): ConfigSummary {
  const perClient = config.rateLimit.perClient;
  return {
    listen: `${config.listen.host}:${config.listen.port}`,
    dataDir: config.dataDir,
    tls: config.tls !== undefined,
    auth: { enabled: config.auth !== undefined, metrics: config.auth?.metrics ?? false },
    registries: registries.map((r) => ({
      name: r.name,
      url: r.url,
      offline: r.offline,
      tagTtlSeconds: seconds(r.tags.ttl),
      account: r.credentials !== undefined,
      allow: r.allow ? [...r.allow] : null,
    })),
    tags: {
      ttlSeconds: seconds(config.tags.ttl),
      maxStaleSeconds: seconds(config.tags.maxStale),
      staleWhileRevalidate: config.tags.staleWhileRevalidate,
      keepDeleted: config.tags.keepDeleted,
    },
    cache: {
      quotaBytes: config.cache.maxBytes ?? null,
      highWatermark: config.cache.highWatermark,
      lowWatermark: config.cache.lowWatermark,
      gcIntervalSeconds: config.cache.gcInterval === 'off' ? null : seconds(config.cache.gcInterval),
      gcGraceSeconds: seconds(config.cache.gcGrace),
      configPins: config.cache.pins.length,
    },
    rateLimit: { reserve: config.rateLimit.reserve, perClient: perClient === 'off' ? 'off' : `${perClient.pulls} per ${seconds(perClient.window)} s` },
    admin: { socket: config.admin.socket, network: config.admin.token !== undefined },
  };
}
