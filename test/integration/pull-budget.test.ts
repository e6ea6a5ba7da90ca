// Issue 14, "fair share of the pull budget": with rateLimit.perClient, a client that has spent its share of
// upstream pulls gets 429 with Retry-After for what is not cached, while cached content and other clients go on.
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { buildLayer, buildSchema2Image, pushImage } from '../fixtures/images.js';
import { startMirror, type TestMirror } from '../fixtures/mirror.js';
import { DOCKER_ACCEPT } from '../fixtures/puller.js';

let front: HubFront;
let mirror: TestMirror;
const other = new Agent({ localAddress: '127.0.0.2', keepAliveTimeout: 10 });

beforeAll(async () => {
  for (const tag of ['1', '2', '3']) {
    const layer = await buildLayer({ sizeBytes: 512, seed: `budget-${tag}` });
    await pushImage(inject('registryUrl'), 'budget/app', tag, buildSchema2Image({ os: 'linux', architecture: 'amd64', layers: [layer] }));
  }
  front = await startHubFront({ upstream: inject('registryUrl') });
  mirror = await startMirror(front.url, { config: { rateLimit: { reserve: 0, perClient: { pulls: 2, window: '1h' } } } });
});
afterAll(async () => {
  await mirror?.close();
  await front?.close();
  await other.close();
});

async function get(tag: string, dispatcher?: Agent) {
  const res = await request(`${mirror.url}/v2/budget/app/manifests/${tag}`, { headers: { accept: DOCKER_ACCEPT }, ...(dispatcher ? { dispatcher } : {}) });
  await res.body.dump();
  return { status: res.statusCode, retryAfter: res.headers['retry-after'] };
}

describe('rateLimit.perClient', () => {
  it("refuses a client's third uncached pull with 429, still serves it what is cached, and serves another client", async () => {
    expect((await get('1')).status).toBe(200);
    expect((await get('2')).status).toBe(200);
    const refused = await get('3');
    expect(refused.status).toBe(429);
    expect(Number(refused.retryAfter)).toBeGreaterThan(3000);
    expect((await get('1')).status).toBe(200); // cached: no pull spent
    expect((await get('3', other)).status).toBe(200); // another address has its own share
    await front.idle();
    expect(front.count({ kind: 'manifest', method: 'GET' })).toBe(3);
  });
});
