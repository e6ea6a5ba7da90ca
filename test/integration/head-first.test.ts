// Issue 11: a tag that clients resolve with HEAD (dockerd, containerd), then fetch by digest, survives an
// upstream outage past its TTL like one fetched with GET; tags/list answers from the cache while upstream cannot;
// a tag deleted upstream is dropped, or kept with tags.keepDeleted. The mirror's clock is moved, never slept on.
import { createHash } from 'node:crypto';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type Fault, type FaultAction, type HubFront } from '../fixtures/hub-front.js';
import { buildLayer, buildSchema2Image, pushImage, type TestImage } from '../fixtures/images.js';
import { metricValue, startMirror, type TestMirror } from '../fixtures/mirror.js';
import { DOCKER_ACCEPT } from '../fixtures/puller.js';

/** What containerd 1.6 sends when it resolves a tag: the known types, then anything. */
const CONTAINERD_ACCEPT = `${DOCKER_ACCEPT}, */*`;
const HOUR = 3_600_000;

let front: HubFront;
const mirrors: TestMirror[] = [];
let clock = Date.now();

beforeAll(async () => {
  front = await startHubFront({
    upstream: inject('registryUrl'),
    auth: {},
    rateLimit: { limit: 1000, windowSeconds: 21_600 },
  });
});
afterEach(async () => {
  await front.setDown(false);
  front.reset();
  for (const m of mirrors.splice(0)) await m.close();
});
afterAll(() => front?.close());

async function mirrorOn(config: NonNullable<Parameters<typeof startMirror>[1]>['config'] = {}, logLines?: string[]) {
  const m = await startMirror(front.url, {
    config: { upstream: { headersTimeout: '500ms', breakerFailures: 2 }, tags: { ttl: '1h', rules: [] }, rateLimit: { reserve: 0 }, ...config },
    now: () => clock,
    ...(logLines ? { logLines } : {}),
  });
  mirrors.push(m);
  return m;
}

async function pushTiny(repo: string, tag: string, seed: string): Promise<TestImage> {
  const layer = await buildLayer({ sizeBytes: 2048, seed });
  return pushImage(inject('registryUrl'), repo, tag, buildSchema2Image({ os: 'linux', architecture: 'amd64', layers: [layer] }));
}

async function manifest(base: string, method: 'HEAD' | 'GET', repo: string, reference: string, accept: string) {
  const started = performance.now();
  const res = await request(`${base}/v2/${repo}/manifests/${reference}`, { method, headers: { accept } });
  const body = Buffer.from(await res.body.arrayBuffer());
  return {
    status: res.statusCode,
    digest: res.headers['docker-content-digest'],
    retryAfter: res.headers['retry-after'],
    bodyDigest: `sha256:${createHash('sha256').update(body).digest('hex')}`,
    body,
    ms: performance.now() - started,
  };
}

/** The way dockerd and containerd pull: HEAD by tag, then GET by digest; never GET by tag. */
async function headFirstPull(base: string, repo: string, tag: string, accept: string): Promise<string> {
  const head = await manifest(base, 'HEAD', repo, tag, accept);
  expect(head.status).toBe(200);
  const digest = String(head.digest);
  const byDigest = await manifest(base, 'GET', repo, digest, accept);
  expect(byDigest.status).toBe(200);
  expect(byDigest.bodyDigest).toBe(digest);
  return digest;
}

const OUTAGES: Array<{ name: string; apply: () => Promise<void> | void }> = [
  { name: 'refusing connections', apply: () => front.setDown(true) },
  { name: 'answering 500', apply: () => front.setFault(everyV2({ kind: 'status', status: 500 })) },
  { name: 'answering 503', apply: () => front.setFault(everyV2({ kind: 'status', status: 503 })) },
  { name: 'answering 429', apply: () => front.setFault(everyV2({ kind: 'status', status: 429, headers: { 'retry-after': '600' } })) },
  { name: 'stalling past headersTimeout', apply: () => front.setFault(everyV2({ kind: 'slow', ms: 5_000 })) },
  { name: 'failing its token endpoint', apply: () => front.setFault({ path: /^\/token$/, kind: 'status', status: 500 }) },
];

/** Every registry request (manifests, blobs, tags), not the token endpoint. */
function everyV2(action: FaultAction): Fault {
  return { ...action, path: /^\/v2\/.+/ };
}

async function tagsList(base: string, repo: string, query = '') {
  const res = await request(`${base}/v2/${repo}/tags/list${query}`);
  return { status: res.statusCode, link: res.headers.link, body: (await res.body.json()) as { name?: string; tags?: string[] } };
}

describe('a tag first resolved by HEAD, then fetched by digest only', () => {
  it.each(OUTAGES)('is served past its TTL while upstream is $name: HEAD and GET by tag answer 200 with the same digest', async ({ name, apply }) => {
    const repo = `headfirst/${name.toLowerCase().replace(/\W+/g, '-')}`;
    const image = await pushTiny(repo, 'v1', `head-first-${name}`);
    const logLines: string[] = [];
    const m = await mirrorOn({}, logLines);
    // containerd resolves it; dockerd (another Accept list) asks for it during the outage.
    expect(await headFirstPull(m.url, repo, 'v1', CONTAINERD_ACCEPT)).toBe(image.digest);
    // Nothing of the mirror's own (a manifest store, a prefetch when configured) meets the outage first.
    await front.idle();

    await apply();
    clock += 2 * HOUR;
    const head = await manifest(m.url, 'HEAD', repo, 'v1', DOCKER_ACCEPT);
    const get = await manifest(m.url, 'GET', repo, 'v1', DOCKER_ACCEPT);
    expect([head.status, head.digest]).toEqual([200, image.digest]);
    expect([get.status, get.digest, get.bodyDigest]).toEqual([200, image.digest, image.digest]);
    // The same stale path as a tag first fetched by GET: its metric and its access-log field. A 429 also makes
    // the mirror conserve pulls, so the GET after it is served without asking (reason ratelimit).
    const metrics = await m.metrics();
    const stale = (reason: string) => metricValue(metrics, 'regmirror_stale_served_total', { reason });
    expect([stale('error'), stale('ratelimit')]).toEqual(name === 'answering 429' ? [1, 1] : [2, 0]);
    const requestLog = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request' && String(l.path).endsWith('/v1'));
    expect(requestLog.slice(-2).map((l) => [l.method, l.status, l.cache])).toEqual([
      ['HEAD', 200, 'stale'],
      ['GET', 200, 'stale'],
    ]);

    // Something never pulled fails fast instead of waiting for upstream.
    const uncached = await manifest(m.url, 'HEAD', repo, 'never-pulled', DOCKER_ACCEPT);
    expect(uncached.status).toBe(name === 'answering 429' ? 429 : 503);
    if (name === 'answering 429') expect(Number(uncached.retryAfter)).toBeGreaterThan(0);
    expect(uncached.ms).toBeLessThan(2_000);
  });

  it('found by containerd when dockerd resolved it, during an outage', async () => {
    const image = await pushTiny('headfirst/other-way', 'v1', 'head-first-other-way');
    const m = await mirrorOn();
    expect(await headFirstPull(m.url, 'headfirst/other-way', 'v1', DOCKER_ACCEPT)).toBe(image.digest);
    await front.setDown(true);
    clock += 2 * HOUR;
    expect(await headFirstPull(m.url, 'headfirst/other-way', 'v1', CONTAINERD_ACCEPT)).toBe(image.digest);
  });

  it('fetches the body of a tag only ever HEADed on the next GET by tag, by digest, without a second HEAD', async () => {
    const image = await pushTiny('headfirst/head-only', 'v1', 'head-first-head-only');
    const m = await mirrorOn();
    expect((await manifest(m.url, 'HEAD', 'headfirst/head-only', 'v1', DOCKER_ACCEPT)).digest).toBe(image.digest);
    await front.idle();
    front.reset();
    const get = await manifest(m.url, 'GET', 'headfirst/head-only', 'v1', DOCKER_ACCEPT);
    expect([get.status, get.bodyDigest]).toEqual([200, image.digest]);
    await front.idle();
    expect(front.requests.filter((r) => r.kind === 'manifest').map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET /v2/headfirst/head-only/manifests/${image.digest}`,
    ]);
  });

  it('recovers when the trial request after an outage meets a 429: an uncached tag is fetched once upstream is well', async () => {
    await pushTiny('headfirst/recovers', 'v1', 'head-first-recovers');
    const image = await pushTiny('headfirst/recovers', 'later', 'head-first-recovers-later');
    const m = await mirrorOn();
    await headFirstPull(m.url, 'headfirst/recovers', 'v1', DOCKER_ACCEPT);
    await front.setDown(true);
    clock += 2 * HOUR;
    for (let i = 0; i < 3; i++) expect((await manifest(m.url, 'HEAD', 'headfirst/recovers', 'v1', DOCKER_ACCEPT)).status).toBe(200);
    await front.setDown(false);
    front.setFault({ ...everyV2({ kind: 'status', status: 429, headers: { 'retry-after': '60' } }), times: 1 });
    clock += 2 * HOUR; // past the breaker's cool-down: the next request is its trial, and meets the 429
    expect((await manifest(m.url, 'HEAD', 'headfirst/recovers', 'v1', DOCKER_ACCEPT)).status).toBe(200);
    clock += 2 * HOUR; // past the 429's Retry-After too
    expect(await headFirstPull(m.url, 'headfirst/recovers', 'later', DOCKER_ACCEPT)).toBe(image.digest);
  });

  it('serves a tag past maxStale no more: 503 during the outage', async () => {
    await pushTiny('headfirst/too-old', 'v1', 'head-first-too-old');
    const m = await mirrorOn({ tags: { ttl: '1h', rules: [], maxStale: '2h' } });
    await headFirstPull(m.url, 'headfirst/too-old', 'v1', DOCKER_ACCEPT);
    await front.setDown(true);
    clock += 3 * HOUR;
    expect((await manifest(m.url, 'HEAD', 'headfirst/too-old', 'v1', DOCKER_ACCEPT)).status).toBe(503);
  });
});

describe('a client that hangs up', () => {
  it('stops the upstream request made only for it', async () => {
    await pushTiny('headfirst/hangup', 'v1', 'head-first-hangup');
    const logLines: string[] = [];
    const m = await mirrorOn({ upstream: { headersTimeout: '30s' } }, logLines);
    await headFirstPull(m.url, 'headfirst/hangup', 'v1', DOCKER_ACCEPT); // token and connection warm
    front.reset();
    front.setFault({ path: /manifests\/slow$/, kind: 'slow', ms: 20_000 });
    const client = request(`${m.url}/v2/headfirst/hangup/manifests/slow`, { method: 'HEAD', signal: AbortSignal.timeout(300) });
    await expect(client).rejects.toThrow();
    // The mirror gives up its HEAD at once, not after upstream's 20 s.
    await expect.poll(() => front.requests.filter((r) => r.path.endsWith('/slow') && !r.done).length, { timeout: 3_000 }).toBe(0);
    expect(front.requests.some((r) => r.path.endsWith('/slow'))).toBe(true);
    // Logged as what it was: the client closed the request (nginx's 499), not a success.
    await expect
      .poll(() => logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'request' && String(l.path).endsWith('/slow'))?.status)
      .toBe(499);
  });
});

describe('tags/list', () => {
  it("passes upstream's list on while it answers, and lists the cached tags (n/last pages) while it is down and offline", async () => {
    const repo = 'headfirst/listed';
    for (const tag of ['b', 'a', 'c', 'uncached']) await pushTiny(repo, tag, `listed-${tag}`);
    const m = await mirrorOn();
    for (const tag of ['b', 'a', 'c']) await headFirstPull(m.url, repo, tag, DOCKER_ACCEPT);
    expect((await tagsList(m.url, repo)).body.tags?.sort()).toEqual(['a', 'b', 'c', 'uncached']);

    await front.setDown(true);
    expect(await tagsList(m.url, repo)).toEqual({ status: 200, link: undefined, body: { name: repo, tags: ['a', 'b', 'c'] } });
    const first = await tagsList(m.url, repo, '?n=2');
    expect(first.body.tags).toEqual(['a', 'b']);
    expect(first.link).toBe(`</v2/${repo}/tags/list?n=2&last=b>; rel="next"`);
    expect((await tagsList(m.url, repo, '?n=2&last=b')).body.tags).toEqual(['c']);
    expect(await tagsList(m.url, repo, '?n=0')).toEqual({ status: 200, link: undefined, body: { name: repo, tags: [] } });
    expect(await tagsList(m.url, repo, '?last=c')).toEqual({ status: 200, link: undefined, body: { name: repo, tags: [] } });
    expect((await tagsList(m.url, repo, '?n=x')).status).toBe(400);
    expect((await tagsList(m.url, 'headfirst/never-seen')).status).toBe(503);

    await m.stop();
    const offline = await startMirror('none', { dataDir: m.dataDir });
    mirrors.push(offline);
    expect(await tagsList(offline.url, repo)).toEqual({ status: 200, link: undefined, body: { name: repo, tags: ['a', 'b', 'c'] } });
    expect((await tagsList(offline.url, 'headfirst/never-seen')).status).toBe(404);
  });
});

describe('a tag upstream deleted', () => {
  async function deleteUpstream(repo: string, digest: string): Promise<void> {
    const res = await request(`${inject('registryUrl')}/v2/${repo}/manifests/${digest}`, { method: 'DELETE' });
    await res.body.dump();
    expect(res.statusCode).toBe(202);
  }

  it('is dropped past its TTL: 404, and no longer listed while upstream is down', async () => {
    const repo = 'headfirst/deleted';
    const image = await pushTiny(repo, 'v1', 'deleted-v1');
    await pushTiny(repo, 'v2', 'deleted-v2');
    const m = await mirrorOn();
    await headFirstPull(m.url, repo, 'v1', DOCKER_ACCEPT);
    await headFirstPull(m.url, repo, 'v2', DOCKER_ACCEPT);
    await deleteUpstream(repo, image.digest);
    clock += 2 * HOUR;
    expect((await manifest(m.url, 'HEAD', repo, 'v1', DOCKER_ACCEPT)).status).toBe(404);
    expect((await manifest(m.url, 'GET', repo, 'v1', CONTAINERD_ACCEPT)).status).toBe(404);
    await front.setDown(true);
    expect((await tagsList(m.url, repo)).body.tags).toEqual(['v2']);
  });

  it('keeps answering with the last known digest under tags.keepDeleted', async () => {
    const repo = 'headfirst/kept';
    const image = await pushTiny(repo, 'v1', 'kept-v1');
    const m = await mirrorOn({ tags: { ttl: '1h', rules: [], keepDeleted: true } });
    await headFirstPull(m.url, repo, 'v1', DOCKER_ACCEPT);
    await deleteUpstream(repo, image.digest);
    clock += 2 * HOUR;
    const head = await manifest(m.url, 'HEAD', repo, 'v1', DOCKER_ACCEPT);
    const get = await manifest(m.url, 'GET', repo, 'v1', DOCKER_ACCEPT);
    expect([head.status, head.digest, get.status, get.bodyDigest]).toEqual([200, image.digest, 200, image.digest]);
    expect(metricValue(await m.metrics(), 'regmirror_stale_served_total', { reason: 'deleted' })).toBeGreaterThanOrEqual(1);
  });
});
