// Issue 13: several registries behind one mirror, chosen by containerd's `?ns=` or a path prefix; one
// content-addressed store for all; a registry that is not configured is NAME_UNKNOWN with no upstream request.
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { buildLayer, buildSchema2Image, pushImage, type TestImage } from '../fixtures/images.js';
import { metricValue, startMirror, type TestMirror } from '../fixtures/mirror.js';
import { DOCKER_ACCEPT, pull } from '../fixtures/puller.js';

let hub: HubFront;
let ghcr: HubFront;
let mirror: TestMirror;
let hubImage: TestImage;
let ghcrImage: TestImage;
let base: string;

beforeAll(async () => {
  // Both "registries" are fronts of the one test registry, each with its own token realm; their repositories
  // differ, so each front's log tells whose requests reached it.
  const registry = inject('registryUrl');
  const [shared, hubTop, ghcrTop] = await Promise.all([
    buildLayer({ sizeBytes: 256 * 1024, seed: 'registries-base' }),
    buildLayer({ sizeBytes: 4096, seed: 'registries-hub' }),
    buildLayer({ sizeBytes: 4096, seed: 'registries-ghcr' }),
  ]);
  base = shared.digest;
  hubImage = await pushImage(registry, 'library/regbase', '1', buildSchema2Image({ os: 'linux', architecture: 'amd64', layers: [shared, hubTop] }));
  ghcrImage = await pushImage(registry, 'regowner/regtool', '1', buildSchema2Image({ os: 'linux', architecture: 'amd64', layers: [shared, ghcrTop] }));
  hub = await startHubFront({ upstream: registry, auth: {} });
  ghcr = await startHubFront({ upstream: registry, auth: {} });
  mirror = await startMirror(hub.url, {
    config: { upstreams: [{ name: 'docker.io', url: hub.url }, { name: 'ghcr.io', url: ghcr.url }] },
  });
});
beforeEach(() => {
  hub.reset();
  ghcr.reset();
});
afterAll(async () => {
  await mirror?.close();
  await hub?.close();
  await ghcr?.close();
});

async function v2(path: string, method: 'GET' | 'HEAD' = 'GET') {
  const res = await request(`${mirror.url}${path}`, { method, headers: { accept: DOCKER_ACCEPT } });
  const text = await res.body.text();
  return { status: res.statusCode, digest: res.headers['docker-content-digest'], text };
}

const repos = (front: HubFront) => [...new Set(front.requests.filter((r) => r.path.startsWith('/v2/') && r.path !== '/v2/').map((r) => r.path.split('/manifests/')[0]?.split('/blobs/')[0]))];

describe('one mirror, two registries', () => {
  it('pulls from each registry by ?ns= and by path prefix, each front seeing only its own repositories, the shared layer fetched once', async () => {
    // Docker Hub by default (dockerd's registry-mirrors), ghcr.io by ?ns= (containerd), then by prefix (podman).
    expect((await pull(mirror.url, 'library/regbase', '1')).digest).toBe(hubImage.digest);
    expect((await pull(mirror.url, 'regowner/regtool', '1', { query: '?ns=ghcr.io' })).digest).toBe(ghcrImage.digest);
    expect((await v2('/v2/ghcr.io/regowner/regtool/manifests/1')).digest).toBe(ghcrImage.digest);
    await Promise.all([hub.idle(), ghcr.idle()]);
    expect(repos(hub)).toEqual(['/v2/library/regbase']);
    expect(repos(ghcr)).toEqual(['/v2/regowner/regtool']);
    const baseGets = [...hub.requests, ...ghcr.requests].filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${base}`));
    expect(baseGets).toHaveLength(1);
  });

  it('keeps the tags of each registry apart, and short names become library/ on Docker Hub only', async () => {
    // One repository behind both fronts (one registry underneath): two tags here, one per registry, each asked
    // of its own upstream.
    await pushImage(inject('registryUrl'), 'regowner/apart', '1', buildSchema2Image({ os: 'linux', architecture: 'amd64', layers: [await buildLayer({ sizeBytes: 512, seed: 'registries-apart' })] }));
    expect((await v2('/v2/regowner/apart/manifests/1?ns=docker.io', 'HEAD')).status).toBe(200);
    expect((await v2('/v2/ghcr.io/regowner/apart/manifests/1', 'HEAD')).status).toBe(200);
    await Promise.all([hub.idle(), ghcr.idle()]);
    expect(hub.count({ kind: 'manifest', method: 'HEAD', pathIncludes: 'regowner/apart' })).toBe(1);
    expect(ghcr.count({ kind: 'manifest', method: 'HEAD', pathIncludes: 'regowner/apart' })).toBe(1);
    hub.reset();
    ghcr.reset();
    expect((await v2('/v2/ghcr.io/regbase/manifests/1')).status).toBe(404); // not library/regbase on ghcr.io
    await ghcr.idle();
    expect(ghcr.requests.some((r) => r.path.startsWith('/v2/regbase/'))).toBe(true);
    expect(hub.requests).toEqual([]);
  });

  it('takes ?ns= over a dotted first component, which is then part of the repository (gcr.io/google.com/…)', async () => {
    const image = await pushImage(inject('registryUrl'), 'google.com/x/tool', '1', buildSchema2Image({ os: 'linux', architecture: 'amd64', layers: [await buildLayer({ sizeBytes: 512, seed: 'registries-dotted' })] }));
    const answer = await v2('/v2/google.com/x/tool/manifests/1?ns=ghcr.io');
    expect([answer.status, answer.digest]).toEqual([200, image.digest]);
    await ghcr.idle();
    expect(ghcr.requests.some((r) => r.path.startsWith('/v2/google.com/x/tool/'))).toBe(true);
  });

  it('strips a path prefix that repeats ?ns= (containerd override_path), and refuses hosts that are no hosts', async () => {
    expect((await v2('/v2/ghcr.io/regowner/regtool/manifests/1?ns=ghcr.io')).digest).toBe(ghcrImage.digest);
    for (const path of ['/v2/foo_bar.baz/x/manifests/1', '/v2/regowner/regtool/manifests/1?ns=../../etc', `/v2/regowner/regtool/manifests/1?ns=${'a'.repeat(300)}`]) {
      const answer = await v2(path);
      expect([path, answer.status, (JSON.parse(answer.text) as { errors: Array<{ code: string }> }).errors[0]?.code]).toEqual([path, 400, 'NAME_INVALID']);
      expect(answer.text.length).toBeLessThan(1000);
    }
    await Promise.all([hub.idle(), ghcr.idle()]);
    expect([...hub.requests, ...ghcr.requests].filter((r) => r.path.includes('foo_bar'))).toEqual([]);
  });

  it('answers a registry that is not configured with NAME_UNKNOWN naming it, asking no upstream', async () => {
    for (const path of ['/v2/regowner/regtool/manifests/1?ns=quay.io', '/v2/quay.io/regowner/regtool/manifests/1', `/v2/quay.io/regowner/regtool/blobs/${base}`]) {
      const answer = await v2(path);
      expect(answer.status, path).toBe(404);
      expect(JSON.parse(answer.text)).toMatchObject({ errors: [{ code: 'NAME_UNKNOWN', message: 'registry quay.io is not mirrored here' }] });
    }
    await Promise.all([hub.idle(), ghcr.idle()]);
    expect([...hub.requests, ...ghcr.requests]).toEqual([]);
  });

  it("labels cache and upstream metrics with the registry, and lists each registry's breaker on /readyz", async () => {
    await pull(mirror.url, 'regowner/regtool', '1', { query: '?ns=ghcr.io' });
    const text = await mirror.metrics();
    expect(metricValue(text, 'regmirror_cache_requests_total', { registry: 'ghcr.io', kind: 'manifest' })).toBeGreaterThan(0);
    expect(metricValue(text, 'regmirror_upstream_requests_total', { registry: 'ghcr.io' })).toBeGreaterThan(0);
    expect(metricValue(text, 'regmirror_upstream_requests_total', { registry: 'docker.io' })).toBeGreaterThan(0);
    const ready = (await (await request(`${mirror.url}/readyz`)).body.json()) as { upstream: Record<string, unknown> };
    expect(Object.keys(ready.upstream).sort()).toEqual(['docker.io', 'ghcr.io']);
  });

  it('pages tags/list the way the client came: a Link with the path prefix, or with ?ns=', async () => {
    await pushImage(inject('registryUrl'), 'regowner/regtool', '2', buildSchema2Image({ os: 'linux', architecture: 'amd64', layers: [await buildLayer({ sizeBytes: 512, seed: 'registries-tool-2' })] }));
    expect((await v2('/v2/ghcr.io/regowner/regtool/manifests/1', 'HEAD')).status).toBe(200);
    expect((await v2('/v2/ghcr.io/regowner/regtool/manifests/2', 'HEAD')).status).toBe(200);
    // While ghcr.io is down the mirror pages its own records, and its Link must lead back to ghcr.io here.
    await ghcr.setDown(true);
    try {
      const byPrefix = await request(`${mirror.url}/v2/ghcr.io/regowner/regtool/tags/list?n=1`);
      expect(await byPrefix.body.json()).toEqual({ name: 'regowner/regtool', tags: ['1'] });
      expect(byPrefix.headers.link).toBe('</v2/ghcr.io/regowner/regtool/tags/list?n=1&last=1>; rel="next"');
      const byNs = await request(`${mirror.url}/v2/regowner/regtool/tags/list?n=1&ns=ghcr.io`);
      await byNs.body.dump();
      expect(byNs.headers.link).toBe('</v2/regowner/regtool/tags/list?n=1&last=1&ns=ghcr.io>; rel="next"');
    } finally {
      await ghcr.setDown(false);
    }
  });
});
