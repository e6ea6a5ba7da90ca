// Issue 14, finding 10: an upstream's Retry-After and rate-limit window have upper bounds (1 h and 24 h), so one
// hostile or broken answer cannot stop the mirror from asking upstream for days.
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Metrics } from '../../src/metrics/metrics.js';
import { OCI_MANIFEST } from '../../src/registry/media-types.js';
import { parseRepository } from '../../src/registry/reference.js';
import type { RegistryClient } from '../../src/upstream/client.js';
import { RateLimitTracker } from '../../src/upstream/rate-limit.js';
import { TestClock, testClient } from '../faults/client.js';
import { registryError, startFaultServer, type FaultServer } from '../faults/server.js';

const alpine = parseRepository('library/alpine');
const accept = { accept: OCI_MANIFEST };
const servers: FaultServer[] = [];
const clients: RegistryClient[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

describe('upper bounds on what upstream asks us to wait', () => {
  it('caps a Retry-After of ten years at one hour, for 429 and 5xx', async () => {
    let status = 429;
    const server = await startFaultServer((req, res) => registryError(res, status, 'TOOMANYREQUESTS', { 'retry-after': '315360000' }));
    servers.push(server);
    const clock = new TestClock();
    const client = testClient(server.url, clock, { breakerFailures: 100 });
    clients.push(client);
    await expect(client.fetchManifest(alpine, 'latest', accept)).rejects.toMatchObject({ status: 429, retryAfterSeconds: 3600 });
    clock.advance(3_600_001);
    status = 503;
    await expect(client.fetchManifest(alpine, 'latest', accept)).rejects.toMatchObject({ status: 503, retryAfterSeconds: 3600 });
    expect(server.requests).toHaveLength(2); // an hour later, upstream is asked again
  });

  it('caps a rate-limit window at 24 hours', () => {
    const clock = new TestClock();
    const tracker = new RateLimitTracker(10, new Metrics(new Registry()), pino({ level: 'silent' }), clock.now);
    tracker.observe({ 'ratelimit-limit': '100;w=999999999', 'ratelimit-remaining': '0;w=999999999' });
    expect(tracker.conserving()).toBe(true);
    expect(tracker.limited(undefined)).toBeLessThanOrEqual(3600);
    clock.advance(24 * 3600 * 1000 + 1000);
    expect(tracker.conserving()).toBe(false);
  });

  it('caps what limited() remembers, whatever it is given', () => {
    const clock = new TestClock();
    const tracker = new RateLimitTracker(10, new Metrics(new Registry()), pino({ level: 'silent' }), clock.now);
    expect(tracker.limited(1e12)).toBe(3600);
    expect(tracker.limitedForSeconds()).toBe(3600);
  });
});
