// Issue 15, must-show 3 (and revalidation): a tag and its image deleted through the admin API while a client pulls it. The
// hub front holds one layer's body part-way, so the client is mid-pull when the delete lands (no sleeps); the
// pull must still complete with correct digests, and the next pull must fetch the image from upstream again.
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import type { DeleteResult, RevalidateResult } from '../../src/admin/operations.js';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { metricValue, startMirror, type TestMirror } from '../fixtures/mirror.js';
import { pull } from '../fixtures/puller.js';

let front: HubFront;
let mirror: TestMirror | undefined;
let agent: Agent | undefined;
beforeAll(async () => {
  front = await startHubFront({ upstream: inject('registryUrl') });
});
afterAll(() => front?.close());
afterEach(async () => {
  await agent?.close();
  agent = undefined;
  await mirror?.close();
  front.reset();
});

async function admin<T>(socketPath: string, path: string, body: unknown): Promise<{ status: number; json: T }> {
  agent ??= new Agent({ connect: { socketPath }, keepAliveTimeout: 10 });
  const response = await request(`http://localhost/api/v1/admin/${path}`, { method: 'POST', dispatcher: agent, body: JSON.stringify(body) });
  return { status: response.statusCode, json: (await response.body.json()) as T };
}

describe('deleting an image through the admin API while a client pulls it', () => {
  it('lets the pull finish with correct digests, and the next pull fetches the image from upstream again', async () => {
    const image = inject('images').schema2;
    const [, bigLayer] = image.platforms[0]!.layers;
    mirror = await startMirror(front.url);
    const socket = mirror.mirror.adminSocket as string;
    let reached!: () => void;
    const midPull = new Promise<void>((resolve) => (reached = resolve));
    let release!: () => void;
    const until = new Promise<void>((resolve) => (release = resolve));
    front.setFault({ kind: 'hold', afterBytes: 1 << 20, reached, until, path: new RegExp(`/blobs/${bigLayer!.digest}$`), method: 'GET', times: 1 });

    const pulling = pull(mirror.url, image.repo, image.tag);
    await midPull; // the mirror has the manifest and is 1 MiB into the 12 MiB layer
    // The other blobs are stored and recorded before the delete (however the client's requests and, when
    // configured, blob prefetch (issue 16) interleave), so it has stored content to remove beside the manifest.
    const others = image.platforms[0]!.layers.length; // the config and every layer but the held one
    await expect.poll(async () => metricValue(await mirror!.metrics(), 'regmirror_blob_fills_total', { result: 'ok' }), { timeout: 10_000 }).toBeGreaterThanOrEqual(others);
    const deleted = await admin<DeleteResult>(socket, 'delete', { ref: `${image.repo}:${image.tag}`, what: 'image' });
    release();
    const first = await pulling;

    expect(deleted.status).toBe(200);
    const removed = new Set<string>(deleted.json.content?.removed.map((r) => r.digest));
    expect(deleted.json.digests).toEqual([image.digest]);
    expect(removed.has(image.digest)).toBe(true); // the manifest went
    expect(removed.has(bigLayer!.digest)).toBe(false); // being downloaded (no record yet) and streamed: left alone
    expect(first.digest).toBe(image.digest);
    expect(first.blobs.get(bigLayer!.digest)).toBe(bigLayer!.size);

    await front.idle();
    front.reset();
    const second = await pull(mirror.url, image.repo, image.tag);
    expect(second.digest).toBe(image.digest);
    await front.idle();
    // The tag is asked upstream again, and every blob the delete removed is downloaded again.
    expect(front.count({ kind: 'manifest', pathIncludes: `/manifests/${image.tag}` })).toBeGreaterThanOrEqual(1);
    for (const digest of removed) {
      if (digest === image.digest) continue;
      expect(front.count({ method: 'GET', kind: 'blob', pathIncludes: digest })).toBe(1);
    }
    expect(removed.size).toBeGreaterThanOrEqual(2);
  });

  it('deletes only the tag when asked so: the content stays, the next pull asks upstream for the tag', async () => {
    const image = inject('images').user;
    mirror = await startMirror(front.url);
    await pull(mirror.url, image.repo, image.tag);
    const deleted = await admin<DeleteResult>(mirror.mirror.adminSocket as string, 'delete', { ref: `${image.repo}:${image.tag}`, what: 'tag' });
    expect(deleted.status).toBe(200);
    expect(deleted.json.content).toBeUndefined();
    await front.idle();
    front.reset();
    await pull(mirror.url, image.repo, image.tag);
    await front.idle();
    expect(front.count({ kind: 'manifest', pathIncludes: `/manifests/${image.tag}` })).toBeGreaterThanOrEqual(1);
    expect(front.count({ kind: 'blob' })).toBe(0);
  });

  it('revalidates a tag now: a HEAD upstream per cached Accept class, no GET, the digest unchanged', async () => {
    const image = inject('images').user;
    mirror = await startMirror(front.url);
    await pull(mirror.url, image.repo, image.tag);
    await front.idle();
    front.reset();
    const answer = await admin<RevalidateResult>(mirror.mirror.adminSocket as string, 'revalidate', { ref: `${image.repo}:${image.tag}` });
    expect(answer.status).toBe(200);
    expect(answer.json.records).toEqual([expect.objectContaining({ before: image.digest, after: image.digest, stale: false })]);
    await front.idle();
    expect(front.count({ method: 'HEAD', kind: 'manifest' })).toBe(1);
    expect(front.count({ method: 'GET', kind: 'manifest' })).toBe(0);
  });
});
