// Issue 14: per-upstream allow lists (a repository outside the list is 403 DENIED before any upstream request),
// and private content that never crosses repositories when the mirror pulls with credentials (finding 3).
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { buildLayer, buildSchema2Image, pushImage, type TestImage } from '../fixtures/images.js';
import { startMirror, type TestMirror } from '../fixtures/mirror.js';
import { DOCKER_ACCEPT, pull } from '../fixtures/puller.js';

let publicImage: TestImage;
let privateImage: TestImage;
let hub: HubFront | undefined;
let mirror: TestMirror | undefined;

beforeAll(async () => {
  const registry = inject('registryUrl');
  const [pubLayer, privLayer] = await Promise.all([
    buildLayer({ sizeBytes: 8192, seed: 'private-content-public' }),
    buildLayer({ sizeBytes: 8192, seed: 'private-content-secret' }),
  ]);
  publicImage = await pushImage(registry, 'library/pubimg', '1', buildSchema2Image({ os: 'linux', architecture: 'amd64', layers: [pubLayer] }));
  privateImage = await pushImage(registry, 'private/app', '1', buildSchema2Image({ os: 'linux', architecture: 'amd64', layers: [privLayer] }));
});
afterEach(async () => {
  await mirror?.close();
  await hub?.close();
  mirror = undefined;
  hub = undefined;
});
afterAll(async () => {
  await mirror?.close();
  await hub?.close();
});

async function v2(base: string, path: string, method: 'GET' | 'HEAD' = 'GET') {
  const res = await request(`${base}${path}`, { method, headers: { accept: DOCKER_ACCEPT } });
  const text = await res.body.text();
  const code = text.startsWith('{"errors"') ? (JSON.parse(text) as { errors: Array<{ code: string }> }).errors[0]?.code : undefined;
  return { status: res.statusCode, code };
}

const layerOf = (image: TestImage) => image.platforms[0]?.layers[0]?.digest ?? '';
const asked = (front: HubFront, text: string) => front.requests.filter((r) => r.path.includes(text)).map((r) => `${r.method} ${r.path}`);

describe('allow lists', () => {
  it('answers 403 DENIED for a repository outside upstreams[].allow (manifests, blobs, tags/list) without asking upstream', async () => {
    hub = await startHubFront({ upstream: inject('registryUrl'), auth: {} });
    mirror = await startMirror(hub.url, { config: { upstreams: [{ name: 'docker.io', url: hub.url, allow: ['library/*'] }] } });
    const blob = layerOf(publicImage);
    for (const [path, method] of [
      ['/v2/someuser/app/manifests/1', 'GET'],
      ['/v2/someuser/app/manifests/1', 'HEAD'],
      [`/v2/someuser/app/manifests/${publicImage.digest}`, 'GET'],
      [`/v2/someuser/app/blobs/${blob}`, 'GET'],
      [`/v2/someuser/app/blobs/${blob}`, 'HEAD'],
      ['/v2/someuser/app/tags/list', 'GET'],
      ['/v2/docker.io/someuser/app/manifests/1', 'GET'],
    ] as const) {
      const answer = await v2(mirror.url, path, method);
      expect(answer.status, `${method} ${path}`).toBe(403);
      if (method === 'GET') expect(answer.code).toBe('DENIED');
    }
    // Inside the list, and short names (`pubimg` is library/pubimg on Docker Hub), pull as before.
    expect((await pull(mirror.url, 'pubimg', '1')).digest).toBe(publicImage.digest);
    await hub.idle();
    expect(asked(hub, 'someuser')).toEqual([]);
  });

  it('takes upstream.allow when one upstream is configured', async () => {
    hub = await startHubFront({ upstream: inject('registryUrl') });
    mirror = await startMirror(hub.url, { config: { upstream: { url: hub.url, allow: ['library/pub*'] } } });
    expect(await v2(mirror.url, '/v2/private/app/manifests/1')).toEqual({ status: 403, code: 'DENIED' });
    expect((await v2(mirror.url, '/v2/library/pubimg/manifests/1')).status).toBe(200);
    await hub.idle();
    expect(asked(hub, 'private/')).toEqual([]);
  });
});

describe('private content with upstream credentials', () => {
  it("never serves a private repository's blob or manifest through another repository's path; its own path works", async () => {
    const front = await startHubFront({ upstream: inject('registryUrl'), auth: { users: { alice: 'pw' }, private: { 'private/app': ['alice'] } } });
    hub = front;
    const credentials = { username: 'alice', password: 'pw' };
    const first = await startMirror(front.url, { config: { upstream: { url: front.url, credentials } } });
    mirror = first;
    // The mirror pulls the private image with alice's account: its layer and manifest are now in the store.
    expect((await pull(first.url, 'private/app', '1')).digest).toBe(privateImage.digest);
    expect((await pull(first.url, 'library/pubimg', '1')).digest).toBe(publicImage.digest);
    const secret = layerOf(privateImage);
    // Through a public repository's path, by digest: refused, although the bytes are cached.
    expect(await v2(first.url, `/v2/library/pubimg/blobs/${secret}`)).toEqual({ status: 404, code: 'BLOB_UNKNOWN' });
    expect((await v2(first.url, `/v2/library/pubimg/blobs/${secret}`, 'HEAD')).status).toBe(404);
    expect(await v2(first.url, `/v2/library/pubimg/manifests/${privateImage.digest}`)).toEqual({ status: 404, code: 'MANIFEST_UNKNOWN' });
    expect((await v2(first.url, `/v2/library/pubimg/blobs/${privateImage.digest}`)).status).toBe(404);
    // Through its own path, and the public content through its own: served.
    expect((await v2(first.url, `/v2/private/app/blobs/${secret}`)).status).toBe(200);
    expect((await v2(first.url, `/v2/library/pubimg/blobs/${layerOf(publicImage)}`)).status).toBe(200);
    await front.idle();
    // Upstream was asked (HEAD, free on Docker Hub) whether library/pubimg holds it, and said no.
    expect(asked(front, `library/pubimg/blobs/${secret}`).some((r) => r.startsWith('HEAD'))).toBe(true);

    // Restarted with an allow list: the private repository is refused outright, upstream never asked; what each
    // repository is known to hold survives the restart, so cached public content needs no upstream request.
    await first.stop();
    front.reset();
    mirror = await startMirror(front.url, { dataDir: first.dataDir, config: { upstream: { url: front.url, credentials, allow: ['library/*'] } } });
    expect(await v2(mirror.url, '/v2/private/app/manifests/1')).toEqual({ status: 403, code: 'DENIED' });
    expect(await v2(mirror.url, `/v2/private/app/blobs/${secret}`)).toEqual({ status: 403, code: 'DENIED' });
    expect((await v2(mirror.url, `/v2/library/pubimg/blobs/${layerOf(publicImage)}`)).status).toBe(200);
    expect(await v2(mirror.url, `/v2/library/pubimg/blobs/${secret}`)).toEqual({ status: 404, code: 'BLOB_UNKNOWN' });
    await front.idle();
    expect(asked(front, 'private/')).toEqual([]);
    expect(asked(front, layerOf(publicImage))).toEqual([]);
  });

  it('still shares content across repositories by digest when the mirror pulls anonymously', async () => {
    hub = await startHubFront({ upstream: inject('registryUrl') });
    mirror = await startMirror(hub.url);
    expect((await pull(mirror.url, 'library/pubimg', '1')).digest).toBe(publicImage.digest);
    hub.reset();
    expect((await v2(mirror.url, `/v2/someone/else/blobs/${layerOf(publicImage)}`)).status).toBe(200);
    expect(hub.requests).toEqual([]);
  });
});
