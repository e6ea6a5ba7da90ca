// Docker Hub realities against a Hub-like front: tokens, CDN redirects, pull accounting and 429s, outages.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { buildLayer, buildSchema2Image, pushImage, type TestImage } from '../fixtures/images.js';
import { metricValue, startMirror, type TestMirror } from '../fixtures/mirror.js';
import { DOCKER_ACCEPT, pull } from '../fixtures/puller.js';

const PASSWORD = 'dckr_pat_s3cret-Token-4242';
let front: HubFront;
let mirror: TestMirror | undefined;
/** The mirrors' clock: tests move it past a TTL instead of sleeping. */
let clock = Date.now();

beforeAll(async () => {
  front = await startHubFront({
    upstream: inject('registryUrl'),
    auth: { users: { alice: PASSWORD } },
    rateLimit: { limit: 5, windowSeconds: 3600 },
    cdn: true,
  });
});
afterEach(async () => {
  await mirror?.close();
  mirror = undefined;
  await front.setDown(false);
  front.reset();
});
afterAll(() => front?.close());

/**
 * A mirror on the front. Reserve 0, so that the front's small pull allowance (5) does not make the mirror
 * conserve pulls (serve cached tags without asking) in tests that are about revalidation and failures.
 */
function hubMirror(config: NonNullable<Parameters<typeof startMirror>[1]>['config'] = {}, logLines?: string[]) {
  return startMirror(front.url, { config: { rateLimit: { reserve: 0 }, ...config }, now: () => clock, ...(logLines ? { logLines } : {}) });
}

/** A tiny single-platform image, pushed straight to the registry behind the front. */
async function pushTiny(repo: string, tag: string, seed: string): Promise<TestImage> {
  const layer = await buildLayer({ sizeBytes: 4096, seed });
  return pushImage(inject('registryUrl'), repo, tag, buildSchema2Image({ os: 'linux', architecture: 'amd64', layers: [layer] }));
}

async function manifestStatus(repo: string, tag: string) {
  const response = await request(`${mirror?.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: DOCKER_ACCEPT } });
  const body = await response.body.text();
  return { status: response.statusCode, headers: response.headers, body };
}

describe('tag TTL', () => {
  it('answers 20 pulls within the TTL with no upstream request, revalidates with a free HEAD after it, and follows a moved tag with one pull', async () => {
    const first = await pushTiny('library/moving', '1', 'moving-a');
    mirror = await hubMirror({ tags: { ttl: '2s', rules: [] } });
    expect((await pull(mirror.url, 'library/moving', '1')).digest).toBe(first.digest);
    await front.idle();
    front.reset();

    for (let i = 0; i < 20; i++) expect((await pull(mirror.url, 'library/moving', '1')).digest).toBe(first.digest);
    await front.idle();
    expect(front.requests).toEqual([]);

    clock += 2100;
    expect((await pull(mirror.url, 'library/moving', '1')).digest).toBe(first.digest);
    await front.idle();
    expect(front.count({ kind: 'manifest', method: 'HEAD' })).toBe(1);
    expect(front.count({ kind: 'manifest', method: 'GET' })).toBe(0);
    expect(front.pulls()).toBe(0);

    const moved = await pushTiny('library/moving', '1', 'moving-b');
    front.reset();
    expect((await pull(mirror.url, 'library/moving', '1')).digest).toBe(first.digest); // still within the TTL
    clock += 2100;
    expect((await pull(mirror.url, 'library/moving', '1')).digest).toBe(moved.digest);
    await front.idle();
    expect(front.pulls()).toBe(1);
  });

  it('with stale-while-revalidate, answers at once past the TTL and checks upstream in the background', async () => {
    const image = inject('images').schema2;
    mirror = await hubMirror({ tags: { ttl: '1s', rules: [], staleWhileRevalidate: true } });
    await pull(mirror.url, image.repo, image.tag);
    clock += 1100;
    front.reset();
    front.setFault({ kind: 'slow', ms: 3000, path: /manifests/ });
    const started = performance.now();
    expect((await manifestStatus(image.repo, image.tag)).status).toBe(200);
    expect(performance.now() - started).toBeLessThan(1000);
    await expect.poll(() => front.count({ kind: 'manifest', method: 'HEAD' }), { timeout: 5000 }).toBe(1);
  });

  it('remembers a 404 for a tag, so repeated typos reach upstream once', async () => {
    mirror = await hubMirror();
    for (let i = 0; i < 5; i++) expect((await manifestStatus('library/schema2', 'no-such-tag')).status).toBe(404);
    await front.idle();
    // The first request of a fresh mirror meets the token challenge (401) and is sent again with a token.
    expect(front.requests.filter((r) => r.kind === 'manifest' && r.status !== 401).length).toBe(1);
  });
});

describe('rate limit', () => {
  it('spends at most 5 pulls on 50 pulls of 5 cached images by several clients', async () => {
    const images = [
      inject('images').schema2,
      inject('images').user,
      await pushTiny('library/tiny1', '1', 'tiny-1'),
      await pushTiny('library/tiny2', '1', 'tiny-2'),
      await pushTiny('library/tiny3', '1', 'tiny-3'),
    ];
    front.reset();
    // TTL zero: every pull would revalidate, the worst case for a pull budget.
    mirror = await startMirror(front.url, { config: { tags: { ttl: '0s', rules: [] }, rateLimit: { reserve: 1 } } });
    for (const image of images) await pull(mirror.url, image.repo, image.tag);
    const url = mirror.url;
    const clients = Array.from({ length: 5 }, (_, c) =>
      (async () => {
        for (let i = 0; i < 10; i++) {
          const image = images[(c + i) % images.length] as TestImage;
          expect((await pull(url, image.repo, image.tag)).digest).toBe(image.digest);
        }
      })(),
    );
    await Promise.all(clients);
    await front.idle();
    console.log(`50 pulls of 5 cached images: ${front.pulls()} pulls counted upstream, ${front.count({ kind: 'manifest', method: 'HEAD' })} HEADs`);
    expect(front.pulls()).toBeLessThanOrEqual(5);
    // A fresh mirror's first request meets the token challenge (401): that GET is answered with no manifest.
    expect(front.requests.filter((r) => r.kind === 'manifest' && r.method === 'GET' && r.status !== 401).length).toBeLessThanOrEqual(5);
  });

  it('exposes the last rate-limit headers upstream sent as gauges', async () => {
    mirror = await hubMirror();
    await pull(mirror.url, 'library/schema2', '1');
    await front.idle();
    const last = front.lastRateLimitHeaders;
    const text = await mirror.metrics();
    expect(metricValue(text, 'regmirror_upstream_ratelimit_limit')).toBe(Number(last.limit?.split(';')[0]));
    expect(metricValue(text, 'regmirror_upstream_ratelimit_remaining')).toBe(Number(last.remaining?.split(';')[0]));
    expect(metricValue(text, 'regmirror_upstream_ratelimit_window_seconds')).toBe(3600);
  });
});

describe('when upstream says no', () => {
  it('serves cached images while upstream refuses connections, fast once the breaker is open; uncached is 503', async () => {
    const image = inject('images').schema2;
    mirror = await hubMirror({
      tags: { ttl: '0s', rules: [] },
      upstream: { connectTimeout: '1s', breakerFailures: 2, breakerCooldown: '1m' },
    });
    await pull(mirror.url, image.repo, image.tag);
    await front.setDown(true);
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      expect((await pull(mirror.url, image.repo, image.tag)).digest).toBe(image.digest);
      times.push(performance.now() - started);
    }
    console.log(`cached pulls with upstream refusing connections (ms): ${times.map((t) => t.toFixed(0)).join(', ')}`);
    expect(times[0]).toBeLessThan(1500);
    for (const ms of times.slice(2)) expect(ms).toBeLessThan(200);
    const uncached = await manifestStatus('library/multi', '1');
    expect(uncached.status).toBe(503);
    expect(JSON.parse(uncached.body)).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
    // The breaker is open: the answer says when asking again makes sense.
    expect(Number(uncached.headers['retry-after'])).toBeGreaterThan(0);
    const text = await mirror.metrics();
    expect(metricValue(text, 'regmirror_stale_served_total', { reason: 'error' })).toBeGreaterThanOrEqual(5);
    expect(metricValue(text, 'regmirror_upstream_breaker_open')).toBe(1);
  });

  it('answers within the headers timeout while upstream hangs, then at once once the breaker is open', async () => {
    const image = inject('images').schema2;
    mirror = await hubMirror({
      tags: { ttl: '0s', rules: [] },
      upstream: { headersTimeout: '1s', breakerFailures: 1, breakerCooldown: '1m' },
    });
    await pull(mirror.url, image.repo, image.tag);
    front.setFault({ kind: 'slow', ms: 10_000, path: /manifests/ });
    let started = performance.now();
    expect((await manifestStatus(image.repo, image.tag)).status).toBe(200);
    const first = performance.now() - started;
    started = performance.now();
    expect((await manifestStatus(image.repo, image.tag)).status).toBe(200);
    const second = performance.now() - started;
    console.log(`cached tag with upstream hanging: first ${first.toFixed(0)} ms (headersTimeout 1 s), then ${second.toFixed(0)} ms`);
    expect(first).toBeGreaterThan(800);
    expect(first).toBeLessThan(3000);
    expect(second).toBeLessThan(200);
  });

  it('serves cached images under 429, and answers 429 with Retry-After only for what is not cached', async () => {
    const image = inject('images').schema2;
    mirror = await hubMirror({ tags: { ttl: '0s', rules: [] } });
    await pull(mirror.url, image.repo, image.tag);
    front.setFault({ kind: 'status', status: 429, headers: { 'retry-after': '42' }, path: /manifests/ });
    expect((await pull(mirror.url, image.repo, image.tag)).digest).toBe(image.digest);
    const uncached = await manifestStatus('library/multi', '1');
    expect(uncached.status).toBe(429);
    expect(uncached.headers['retry-after']).toBe('42');
    expect(JSON.parse(uncached.body)).toMatchObject({ errors: [{ code: 'TOOMANYREQUESTS' }] });
  });
});

describe('credentials and redirects', () => {
  it('follows CDN redirects without sending Authorization there, caches the blobs, and never shows the credentials', async () => {
    const logLines: string[] = [];
    mirror = await hubMirror({ upstream: { credentials: { username: 'alice', password: PASSWORD } } }, logLines);
    const image = inject('images').multi;
    const responses: string[] = [];
    for (const architecture of ['amd64', 'arm64']) await pull(mirror.url, image.repo, image.tag, { architecture });
    await front.idle();
    expect(front.count({ kind: 'cdn' })).toBeGreaterThan(0);
    expect(front.cdnAuthorizationViolations).toBe(0);
    expect(front.tokensIssued.length).toBeGreaterThan(0);
    expect(front.tokensIssued.every((t) => t.user === 'alice')).toBe(true);

    front.reset();
    for (const architecture of ['amd64', 'arm64']) await pull(mirror.url, image.repo, image.tag, { architecture });
    await front.idle();
    expect(front.count({ kind: 'cdn' })).toBe(0);

    // A token that expired is renewed on the 401.
    front.expireTokens();
    await pull(mirror.url, 'library/schema2', '1');

    // A client's own Authorization header is never passed upstream.
    const clientSecret = 'Bearer client-own-token-777';
    await (await request(`${mirror.url}/v2/library/schema2/manifests/1`, { headers: { authorization: clientSecret, accept: DOCKER_ACCEPT } })).body.dump();
    expect(front.authorizationHeadersSeen).not.toContain(clientSecret);

    for (const path of ['/v2/', '/metrics', `/v2/${image.repo}/manifests/${image.tag}`, '/v2/library/nope/manifests/1']) {
      const response = await request(`${mirror.url}${path}`, { headers: { accept: DOCKER_ACCEPT } });
      responses.push(JSON.stringify(response.headers), await response.body.text());
    }
    const basic = Buffer.from(`alice:${PASSWORD}`).toString('base64');
    for (const text of [logLines.join('\n'), responses.join('\n'), await mirror.metrics()]) {
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(basic);
    }
    expect(logLines.length).toBeGreaterThan(10);
  });
});

describe('a hostile upstream', () => {
  it('gets no credentials when its challenge names a realm outside its own host and domain', async () => {
    // Fault injection: an upstream that sends every client to a token realm on another host.
    const seen: Array<string | undefined> = [];
    const realm: Server = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'anon', expires_in: 300 }));
    });
    await new Promise<void>((resolve) => realm.listen(0, '127.0.0.2', resolve));
    const realmPort = (realm.address() as AddressInfo).port;
    const upstream: Server = createServer((_req, res) => {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.2:${realmPort}/token",service="evil"` }).end();
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    try {
      mirror = await startMirror(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, {
        config: { upstream: { credentials: { username: 'alice', password: PASSWORD } } },
      });
      expect((await manifestStatus('library/alpine', '3.19')).status).toBe(503);
      expect(seen.length).toBeGreaterThan(0);
      expect(seen.every((header) => header === undefined)).toBe(true);
    } finally {
      upstream.closeAllConnections();
      realm.closeAllConnections();
      await new Promise((resolve) => upstream.close(resolve));
      await new Promise((resolve) => realm.close(resolve));
    }
  });
});
