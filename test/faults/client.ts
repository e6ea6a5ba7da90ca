// Owns: the upstream client as the mirror builds it (config defaults, metrics, rate-limit tracker), pointed at a
// fault server and run by a clock the test moves, so breaker cool-downs, tokens and Retry-After take no real time.
import { createHash } from 'node:crypto';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { OCI_MANIFEST } from '../../src/registry/media-types.js';
import type { Digest } from '../../src/registry/reference.js';
import { RegistryClient } from '../../src/upstream/client.js';
import { RateLimitTracker } from '../../src/upstream/rate-limit.js';

export class TestClock {
  constructor(private ms = 1_700_000_000_000) {}
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

export function testClient(
  url: string,
  clock: TestClock,
  upstream: Omit<NonNullable<ConfigInput['upstream']>, 'url'> = {},
): RegistryClient {
  const config = parseConfig({ upstream: { url, connectTimeout: '1s', headersTimeout: '1s', bodyTimeout: '1s', ...upstream } });
  const metrics = new Metrics(new Registry());
  const rateLimit = new RateLimitTracker(config.rateLimit.reserve, metrics, pino({ level: 'silent' }), clock.now);
  return new RegistryClient(config.upstream, metrics, rateLimit, clock.now);
}

/** A small OCI image manifest, its digest and its media type. */
export function sampleManifest(seed = 'a'): { bytes: Buffer; digest: Digest; mediaType: string } {
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${seed.repeat(64).slice(0, 64)}`, size: 2 },
      layers: [],
    }),
  );
  return { bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest, mediaType: OCI_MANIFEST };
}
