// Proves the shared fixtures are real: a stock client (skopeo) reads the seeded images from the registry, and the
// hub front counts, breaks and throttles real registry traffic the way the regmirror tests rely on.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { blobDigests, OCI_INDEX, sha256 } from '../fixtures/images.js';

const run = promisify(execFile);
const registryUrl = inject('registryUrl');
const images = inject('images');
const host = new URL(registryUrl).host;

describe('seeded registry, read by skopeo', () => {
  it('serves library/multi:1 as the OCI index the fixtures built, byte for byte', async () => {
    const ref = `docker://${host}/library/multi:1`;
    const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', ref], {
      timeout: 30_000,
      encoding: 'buffer',
    });
    expect(sha256(stdout)).toBe(images.multi.digest);
    const index = JSON.parse(stdout.toString('utf8')) as {
      mediaType: string;
      manifests: Array<{ digest: string; platform: { os: string; architecture: string } }>;
    };
    expect(index.mediaType).toBe(OCI_INDEX);
    expect(index.manifests.map((m) => [m.platform.os, m.platform.architecture, m.digest])).toEqual(
      images.multi.platforms.map((p) => [p.os, p.architecture, p.digest]),
    );
  });

  it('copies all platforms of library/multi:1 to an OCI layout with unchanged digests and unpackable layers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regmirror-oci-'));
    try {
      const src = `docker://${host}/library/multi:1`;
      await run('skopeo', ['copy', '--src-tls-verify=false', '--all', src, `oci:${dir}`], { timeout: 60_000 });
      const layout = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
      expect(layout.manifests.map((m) => m.digest)).toEqual([images.multi.digest]);
      const stored = new Set((await readdir(join(dir, 'blobs', 'sha256'))).map((hex) => `sha256:${hex}`));
      const expected = [images.multi.digest, ...images.multi.platforms.map((p) => p.digest), ...blobDigests(images.multi)];
      expect([...stored].sort()).toEqual([...new Set(expected)].sort());
      // GNU tar is the independent check that our ustar writer and gzip produce layers a runtime can unpack.
      for (const layer of images.multi.platforms.flatMap((p) => p.layers)) {
        const file = join(dir, 'blobs', 'sha256', layer.digest.slice('sha256:'.length));
        const { stdout } = await run('tar', ['-tzf', file], { timeout: 30_000 });
        expect(stdout).toMatch(/^data\/\ndata\/layer-.+\.bin\n$/);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('hub front', () => {
  let front: HubFront;
  const client = new Agent({ keepAliveTimeout: 10 });
  const [amd64, arm64] = images.multi.platforms;
  const small = arm64?.layers[1]; // 1 MiB layer
  const big = amd64?.layers[1]; // 30 MiB layer
  if (!small || !big) throw new Error('unexpected test image set');
  const blobUrl = (digest: string): string => `${front.url}/v2/library/multi/blobs/${digest}`;

  beforeAll(async () => {
    front = await startHubFront({ upstream: registryUrl });
  });
  afterEach(() => front.reset());
  afterAll(async () => {
    await front.close();
    await client.close();
  });

  it('passes a blob through unchanged and records exactly one blob GET', async () => {
    const res = await request(blobUrl(small.digest), { dispatcher: client });
    expect(res.statusCode).toBe(200);
    expect(res.headers['docker-content-digest']).toBe(small.digest);
    expect(sha256(Buffer.from(await res.body.arrayBuffer()))).toBe(small.digest);
    await front.idle();
    expect(front.count({ method: 'GET', kind: 'blob' })).toBe(1);
    expect(front.count({ kind: 'manifest' })).toBe(0);
    expect(front.requests[0]).toMatchObject({ path: `/v2/library/multi/blobs/${small.digest}`, status: 200, bytes: small.size });
  });

  it('truncate: sends the full Content-Length, then cuts the body after afterBytes so the read fails', async () => {
    front.setFault({ kind: 'truncate', afterBytes: 100_000, path: /\/blobs\//, method: 'GET', times: 1 });
    const res = await request(blobUrl(small.digest), { dispatcher: client });
    expect(res.headers['content-length']).toBe(String(small.size));
    await expect(res.body.arrayBuffer()).rejects.toThrow();
    await front.idle();
    expect(front.requests[0]).toMatchObject({ status: 200, bytes: 100_000 });
    // times: 1 switched the fault off, so the retry is whole.
    const retry = await request(blobUrl(small.digest), { dispatcher: client });
    expect(sha256(Buffer.from(await retry.body.arrayBuffer()))).toBe(small.digest);
  });

  it('corrupt: flips one byte, keeping the length, so the sha256 no longer matches', async () => {
    front.setFault({ kind: 'corrupt', atByte: 12_345, path: /\/blobs\// });
    const res = await request(blobUrl(small.digest), { dispatcher: client });
    const body = Buffer.from(await res.body.arrayBuffer());
    expect(body.length).toBe(small.size);
    expect(sha256(body)).not.toBe(small.digest);
  });

  it('status: answers a registry JSON error for `times` requests, then passes through', async () => {
    front.setFault({ kind: 'status', status: 500, path: /\/manifests\//, times: 2 });
    const url = `${front.url}/v2/library/multi/manifests/1`;
    const headers = { accept: OCI_INDEX };
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await request(url, { headers, dispatcher: client });
      statuses.push(res.statusCode);
      if (res.statusCode === 500) expect(await res.body.json()).toMatchObject({ errors: [{ code: 'UNKNOWN' }] });
      else expect(sha256(Buffer.from(await res.body.arrayBuffer()))).toBe(images.multi.digest);
    }
    expect(statuses).toEqual([500, 500, 200]);
    expect(front.count({ kind: 'manifest' })).toBe(3);
  });

  it('down: drops the connection before any response', async () => {
    front.setFault({ kind: 'down', path: /.*/, times: 1 });
    await expect(request(blobUrl(small.digest), { dispatcher: client })).rejects.toThrow();
    await front.idle();
    expect(front.requests[0]).toMatchObject({ status: 0, bytes: 0, done: true });
  });

  it('stall: pauses the body for ms after afterBytes, then completes it intact', async () => {
    front.setFault({ kind: 'stall', afterBytes: 1_000, ms: 400, path: /\/blobs\// });
    const started = performance.now();
    const res = await request(blobUrl(small.digest), { dispatcher: client });
    expect(sha256(Buffer.from(await res.body.arrayBuffer()))).toBe(small.digest);
    expect(performance.now() - started).toBeGreaterThanOrEqual(390);
  });

  it('bandwidth cap measurably slows a 30 MiB blob', async () => {
    const cap = 20 * 1024 * 1024;
    front.setBandwidth(cap);
    const started = performance.now();
    const res = await request(blobUrl(big.digest), { dispatcher: client });
    expect(sha256(Buffer.from(await res.body.arrayBuffer()))).toBe(big.digest);
    const seconds = (performance.now() - started) / 1000;
    expect(seconds).toBeGreaterThanOrEqual((0.6 * big.size) / cap);
  });
});
