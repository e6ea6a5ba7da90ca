// A bad, broken or vanished upstream never becomes a cached file, and no client owns a download.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { metricValue, startMirror, type TestMirror } from '../fixtures/mirror.js';
import { getBlob } from '../fixtures/puller.js';

let front: HubFront;
let mirror: TestMirror;
const images = () => inject('images');
/** The 30 MiB amd64 layer of library/multi. */
const bigLayer = () => images().multi.platforms.find((p) => p.architecture === 'amd64')?.layers[1] as { digest: string; size: number };

beforeAll(async () => {
  front = await startHubFront({ upstream: inject('registryUrl') });
});
beforeEach(async () => {
  mirror = await startMirror(front.url);
});
afterEach(async () => {
  await mirror.close();
  front.reset();
});
afterAll(() => front?.close());

async function storedFiles(): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) await walk(join(dir, entry.name));
      else found.push(join(dir, entry.name));
    }
  };
  await walk(join(mirror.dataDir, 'blobs'));
  await walk(join(mirror.dataDir, 'tmp'));
  return found;
}

describe('upstream sends wrong bytes', () => {
  it.each<[string, { kind: 'corrupt'; atByte: number } | { kind: 'truncate'; afterBytes: number }, string]>([
    ['corrupted', { kind: 'corrupt', atByte: 5_000_000 }, 'digest'],
    // Every attempt breaks off, the first and each Range resume: the download gives up.
    ['truncated', { kind: 'truncate', afterBytes: 1_000_000 }, 'truncated'],
  ])('a %s blob fails the client, caches nothing, and the next pull succeeds', async (_, fault, reason) => {
    const { digest, size } = bigLayer();
    front.setFault({ ...fault, path: new RegExp(digest) });
    // The response breaks off: the client never holds a complete body with wrong bytes (getBlob would say "got …").
    const failure = await getBlob(mirror.url, 'library/multi', digest).then(
      () => new Error('pull succeeded'),
      (err: Error) => err,
    );
    expect(failure.message).not.toMatch(/pull succeeded|got sha256/);
    // The download ends by itself after the client saw its failure; wait for it to settle.
    await expect.poll(async () => metricValue(await mirror.metrics(), 'regmirror_blob_fills_total', { result: 'error' })).toBe(1);
    expect(await storedFiles()).toEqual([]);
    expect(metricValue(await mirror.metrics(), 'regmirror_verify_failures_total', { reason })).toBe(1);
    front.setFault(undefined);
    await front.idle();
    const attempts = front.count({ method: 'GET', kind: 'blob', pathIncludes: digest });

    expect(await getBlob(mirror.url, 'library/multi', digest)).toBe(size);
    // The client has every byte once the digest checks out; the fsync and rename into the store follow.
    await expect.poll(async () => (await storedFiles()).map((f) => f.split('/').pop())).toEqual([digest.slice(7)]);
    await front.idle();
    expect(front.count({ method: 'GET', kind: 'blob', pathIncludes: digest })).toBe(attempts + 1);
  });

  it('resumes a broken upstream body with a Range request and caches the verified whole', async () => {
    const { digest, size } = bigLayer();
    front.setFault({ kind: 'truncate', afterBytes: 7_000_000, path: new RegExp(digest), times: 1 });
    expect(await getBlob(mirror.url, 'library/multi', digest)).toBe(size);
    await front.idle();
    const gets = front.requests.filter((r) => r.kind === 'blob' && r.path.includes(digest));
    expect(gets.map((r) => r.status)).toEqual([200, 206]);
    expect(metricValue(await mirror.metrics(), 'regmirror_blob_fill_resumes_total')).toBe(1);
    await expect.poll(async () => (await storedFiles()).map((f) => f.split('/').pop())).toEqual([digest.slice(7)]);
  });

  it('aborts every follower of a download that upstream breaks', async () => {
    const { digest } = bigLayer();
    front.setBandwidth(30e6);
    front.setFault({ kind: 'truncate', afterBytes: 5_000_000, path: new RegExp(digest) });
    const results = await Promise.allSettled(Array.from({ length: 3 }, () => getBlob(mirror.url, 'library/multi', digest)));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    await front.idle();
    // One download (its first GET and its Range resumes), never one per client.
    expect(front.count({ method: 'GET', kind: 'blob', pathIncludes: digest })).toBe(4);
    expect(await storedFiles()).toEqual([]);
  });

  it('answers 503 UNAVAILABLE with a registry error body when upstream fails before the first byte', async () => {
    const { digest } = bigLayer();
    front.setFault({ kind: 'status', status: 500, path: new RegExp(digest) });
    const response = await request(`${mirror.url}/v2/library/multi/blobs/${digest}`);
    expect(response.statusCode).toBe(503);
    expect(((await response.body.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('UNAVAILABLE');
  });
});

describe('clients come and go', () => {
  it('completes the cache fill after the only client disconnects', async () => {
    const { digest, size } = bigLayer();
    front.setBandwidth(20e6);
    const response = await request(`${mirror.url}/v2/library/multi/blobs/${digest}`);
    let received = 0;
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      received += chunk.length;
      if (received > 1_000_000) break; // leaves the loop and destroys the body: the client hangs up
    }
    expect(received).toBeLessThan(size);
    await expect
      .poll(async () => metricValue(await mirror.metrics(), 'regmirror_blob_fills_total', { result: 'ok' }), { timeout: 10_000 })
      .toBe(1);
    front.setBandwidth(undefined);
    expect(await getBlob(mirror.url, 'library/multi', digest)).toBe(size);
    await front.idle();
    expect(front.count({ method: 'GET', kind: 'blob', pathIncludes: digest })).toBe(1);
  });

  it('gives every byte to a follower that joins late, while the first client hung up', async () => {
    const { digest, size } = bigLayer();
    front.setBandwidth(20e6);
    const first = await request(`${mirror.url}/v2/library/multi/blobs/${digest}`);
    for await (const _ of first.body) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await getBlob(mirror.url, 'library/multi', digest)).toBe(size);
    await front.idle();
    expect(front.count({ method: 'GET', kind: 'blob', pathIncludes: digest })).toBe(1);
    expect(metricValue(await mirror.metrics(), 'regmirror_cache_requests_total', { kind: 'blob', result: 'coalesced' })).toBe(1);
  });

  it('does not let a slow client hold back a fast one', async () => {
    const { digest, size } = bigLayer();
    const slow = await request(`${mirror.url}/v2/library/multi/blobs/${digest}`);
    const started = performance.now();
    expect(await getBlob(mirror.url, 'library/multi', digest)).toBe(size);
    const fastMs = performance.now() - started;
    // The slow client has read nothing at all; the fast one still got all 28 MB promptly.
    expect(fastMs).toBeLessThan(10_000);
    slow.body.destroy();
  });
});
