// One upstream download per blob, however many clients ask, and bytes reach clients while it runs.
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { request } from 'undici';
import { createHash } from 'node:crypto';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { buildLayer, buildSchema2Image, pushImage, type TestImage } from '../fixtures/images.js';
import { startMirror, type TestMirror } from '../fixtures/mirror.js';
import { pull } from '../fixtures/puller.js';

let front: HubFront;
let mirror: TestMirror;

beforeAll(async () => {
  front = await startHubFront({ upstream: inject('registryUrl') });
});
afterEach(async () => {
  await mirror?.close();
  front.reset();
});
afterAll(() => front?.close());

/**
 * `clients` concurrent pulls of the multi-platform image through the mirror: each gets the amd64 platform's config
 * and layers, and upstream served one GET per blob. Resolves with those digests.
 */
async function pullsFetchEachBlobOnce(clients: number): Promise<string[]> {
  const image = inject('images').multi;
  const results = await Promise.all(Array.from({ length: clients }, () => pull(mirror.url, image.repo, image.tag)));
  const amd64 = image.platforms.find((p) => p.architecture === 'amd64');
  const expected = [amd64?.config, ...(amd64?.layers.map((l) => l.digest) ?? [])].sort();
  for (const result of results) expect([...result.blobs.keys()].sort()).toEqual(expected);
  await front.idle();
  for (const digest of expected) {
    expect(front.count({ method: 'GET', kind: 'blob', pathIncludes: digest as string })).toBe(1);
  }
  return expected as string[];
}

describe('concurrent cold pulls', () => {
  it('serves 8 concurrent pulls of an uncached image with a single upstream GET per blob', async () => {
    mirror = await startMirror(front.url);
    await pullsFetchEachBlobOnce(8);
  });
});

describe('blob prefetch (cache.prefetchBlobs, issue 16)', () => {
  it('downloads the blobs of a manifest fetched for clients once, the clients joining the prefetch: one upstream GET per blob', async () => {
    mirror = await startMirror(front.url, { config: { cache: { prefetchBlobs: 2 } } });
    const expected = await pullsFetchEachBlobOnce(4);
    // Only the platform the clients took: an index names platforms, and their manifests cost pulls.
    expect(front.count({ method: 'GET', kind: 'blob' })).toBe(expected.length);
  });

  it('starts the downloads when the manifest arrives, before the client asks for a blob', async () => {
    mirror = await startMirror(front.url, { config: { cache: { prefetchBlobs: 4 } } });
    const image = inject('images').schema2;
    const res = await request(`${mirror.url}/v2/${image.repo}/manifests/${image.tag}`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    const blobs = image.platforms[0]!.layers.length + 1;
    await expect.poll(() => front.count({ method: 'GET', kind: 'blob' })).toBe(blobs);
    await front.idle();
    // The client's own GETs now come from the cache.
    expect((await pull(mirror.url, image.repo, image.tag)).blobs.size).toBe(blobs);
    await front.idle();
    expect(front.count({ method: 'GET', kind: 'blob' })).toBe(blobs);
  });
});

describe('streaming a large blob from a slow upstream', () => {
  let big: TestImage;
  let layerSize: number;

  beforeAll(async () => {
    const layer = await buildLayer({ sizeBytes: 100 * 2 ** 20, seed: 'big-100m', randomFraction: 0.95 });
    layerSize = layer.size;
    big = await pushImage(inject('registryUrl'), 'library/big', '1', buildSchema2Image({ os: 'linux', architecture: 'amd64', layers: [layer] }));
  }, 120_000);

  it('sends the first bytes long before the 20 MB/s upstream download ends', async () => {
    mirror = await startMirror(front.url);
    front.setBandwidth(20e6);
    const digest = big.platforms[0]?.layers[0]?.digest as string;
    const started = performance.now();
    const response = await request(`${mirror.url}/v2/${big.repo}/blobs/${digest}`);
    const headersMs = performance.now() - started;
    expect(response.statusCode).toBe(200);
    expect(Number(response.headers['content-length'])).toBe(layerSize);
    let firstByteMs = 0;
    const hash = createHash('sha256');
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      if (firstByteMs === 0) firstByteMs = performance.now() - started;
      hash.update(chunk);
    }
    const totalMs = performance.now() - started;
    expect(`sha256:${hash.digest('hex')}`).toBe(digest);
    console.log(`100 MB layer at 20 MB/s: headers ${headersMs.toFixed(0)} ms, first byte ${firstByteMs.toFixed(0)} ms, last byte ${totalMs.toFixed(0)} ms`);
    // The download alone takes ~5 s at this rate; the first bytes must not wait for it.
    expect(totalMs).toBeGreaterThan(3000);
    expect(firstByteMs).toBeLessThan(totalMs / 10);
  });

  it('answers a Range request on a miss from the running download, without a second upstream GET', async () => {
    mirror = await startMirror(front.url);
    front.setBandwidth(20e6);
    const digest = big.platforms[0]?.layers[0]?.digest as string;
    const url = `${mirror.url}/v2/${big.repo}/blobs/${digest}`;
    const whole = request(url).then(async (r) => {
      let length = 0;
      for await (const chunk of r.body as AsyncIterable<Buffer>) length += chunk.length;
      expect(length).toBe(layerSize);
      return performance.now();
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const partial = await request(url, { headers: { range: 'bytes=1000-1999' } });
    const bytes = Buffer.from(await partial.body.arrayBuffer());
    const partialDone = performance.now();
    expect(partial.statusCode).toBe(206);
    expect(partial.headers['content-range']).toBe(`bytes 1000-1999/${layerSize}`);
    expect(bytes.length).toBe(1000);
    const wholeDone = await whole;
    expect(partialDone).toBeLessThan(wholeDone - 2000);
    await front.idle();
    expect(front.count({ method: 'GET', kind: 'blob', pathIncludes: digest })).toBe(1);
    // The range's bytes are the blob's bytes.
    const cached = await request(url, { headers: { range: 'bytes=1000-1999' } });
    expect(Buffer.from(await cached.body.arrayBuffer())).toEqual(bytes);
  });
});
