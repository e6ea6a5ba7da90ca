// Issue 14, finding 6: upstream work does not outlive its clients and cannot queue without bound. A client that
// hangs up cancels its own upstream requests; excess requests are answered 503 with Retry-After at once; and
// shutdown with stalled upstream requests returns within shutdownTimeout instead of waiting for the pool's queue.
import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { parseRepository } from '../../src/registry/reference.js';
import { startMirror, type TestMirror } from '../fixtures/mirror.js';
import { TestClock, testClient } from '../faults/client.js';
import { registryError, startFaultServer, type FaultServer } from '../faults/server.js';

const servers: FaultServer[] = [];
const mirrors: TestMirror[] = [];
afterEach(async () => {
  await Promise.all(mirrors.splice(0).map((m) => m.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** An upstream that accepts every request and never answers it. */
async function stalledUpstream(): Promise<FaultServer> {
  const server = await startFaultServer(() => undefined);
  servers.push(server);
  return server;
}

/** A GET to the mirror, resolving to its status (0 when the connection closed first); `hangUp` (ms or signal) hangs up. */
function get(url: string, hangUp?: number | AbortSignal): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve) => {
    const req = httpRequest(url, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] });
    });
    req.on('error', () => resolve({ status: 0, retryAfter: undefined }));
    if (typeof hangUp === 'number') setTimeout(() => req.destroy(), hangUp);
    else hangUp?.addEventListener('abort', () => req.destroy(), { once: true });
    req.end();
  });
}

const digest = (i: number) => `sha256:${i.toString(16).padStart(64, '0')}`;

describe('upstream work and its clients (finding 6)', () => {
  it('shuts down within shutdownTimeout (+1 s) with 100 stalled upstream requests of clients that hung up', async () => {
    // Blobs are 404 at once; the manifest path each blob 404 then tries never answers. Those requests ran
    // detached from any client, so neither the client's hang-up nor the fills' abort reached them.
    const upstream = await startFaultServer((req, res) => {
      if (req.url?.includes('/blobs/')) registryError(res, 404, 'BLOB_UNKNOWN');
    });
    servers.push(upstream);
    const mirror = await startMirror(upstream.url, { config: { upstream: { headersTimeout: '60s' } } });
    mirrors.push(mirror);
    const hangUp = new AbortController();
    const pending = Array.from({ length: 100 }, (_, i) => get(`${mirror.url}/v2/library/alpine/blobs/${digest(i)}`, hangUp.signal));
    await expect.poll(() => upstream.requests.filter((r) => r.url.includes('/manifests/')).length, { timeout: 5000 }).toBeGreaterThanOrEqual(16);
    hangUp.abort();
    await Promise.all(pending);
    const started = performance.now();
    await mirror.stop(); // shutdownTimeout is 2 s in the test fixture
    const took = performance.now() - started;
    console.log(`finding 6: close() with 100 stalled upstream requests took ${Math.round(took)} ms`);
    expect(took).toBeLessThan(3000);
  }, 15_000);

  it('cancels the upstream requests of clients that hung up, the manifest path a blob 404 tries included', async () => {
    const upstream = await startFaultServer((req, res) => {
      if (req.url?.includes('/blobs/')) registryError(res, 404, 'BLOB_UNKNOWN');
    });
    servers.push(upstream);
    const mirror = await startMirror(upstream.url, { config: { upstream: { headersTimeout: '60s', connections: 4 } } });
    mirrors.push(mirror);
    await Promise.all(Array.from({ length: 40 }, (_, i) => get(`${mirror.url}/v2/library/alpine/blobs/${digest(i)}`, 300)));
    // Had their requests kept running, the 4 connections would stay taken for a minute, the rest queued behind.
    // Bounds far below the minute, with room for a loaded 2-core CI machine.
    const legitimate = get(`${mirror.url}/v2/library/legit/manifests/latest`, 12_000);
    await expect.poll(() => upstream.requests.at(-1)?.url, { timeout: 10_000 }).toBe('/v2/library/legit/manifests/latest');
    await legitimate;
  }, 30_000);

  it('answers 503 with Retry-After at once when the upstream queue is full, and serves again once it drains', async () => {
    const upstream = await stalledUpstream();
    const mirror = await startMirror(upstream.url, { config: { upstream: { headersTimeout: '60s', connections: 2 } } });
    mirrors.push(mirror);
    const stalled = Array.from({ length: 60 }, (_, i) => get(`${mirror.url}/v2/library/app${i}/manifests/latest`, 4000));
    await expect.poll(() => upstream.requests.length, { timeout: 5000 }).toBe(2);
    const started = performance.now();
    const excess = await get(`${mirror.url}/v2/library/extra/manifests/latest`, 3000);
    expect(excess.status).toBe(503);
    expect(Number(excess.retryAfter)).toBeGreaterThan(0);
    expect(performance.now() - started).toBeLessThan(1000);
    await Promise.all(stalled);
    const after = get(`${mirror.url}/v2/library/later/manifests/latest`, 6000);
    await expect.poll(() => upstream.requests.at(-1)?.url, { timeout: 5000 }).toBe('/v2/library/later/manifests/latest');
    await after;
  }, 30_000);

  it("closes the upstream client within its grace with 100 stalled requests that no client's signal ends", async () => {
    const upstream = await stalledUpstream();
    const client = testClient(upstream.url, new TestClock(), { headersTimeout: '60s' });
    const stalled = Array.from({ length: 100 }, (_, i) =>
      client.resolveManifest(parseRepository(`library/app${i}`), 'latest', { accept: undefined }).catch(() => undefined),
    );
    await expect.poll(() => upstream.requests.length, { timeout: 5000 }).toBe(16);
    const started = performance.now();
    await client.close();
    const took = performance.now() - started;
    console.log(`finding 6: RegistryClient.close() with 100 stalled detached requests took ${Math.round(took)} ms`);
    expect(took).toBeLessThan(1000);
    await Promise.all(stalled);
  }, 15_000);
});
