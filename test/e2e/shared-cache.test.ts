// One regmirror in front of different clients on one host: what dockerd pulled, containerd then pulls from
// regmirror's cache, although the two clients differ in Accept headers, request order and Range use.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { startMirror, type TestMirror } from '../fixtures/mirror.js';
import { pushE2eImages, type E2eImages } from './images.js';
import { startContainerd, startDockerd, type PullClient } from './pull-clients.js';

let images: E2eImages;
let front: HubFront;
let mirror: TestMirror;

beforeAll(async () => {
  images = await pushE2eImages(inject('registryUrl'));
  front = await startHubFront({ upstream: inject('registryUrl') });
  mirror = await startMirror(front.url);
});

afterAll(async () => {
  await mirror?.close();
  await front?.close();
});

/** Pulls alpine and nginx (the host's platform) with a client started for this call, then stops it. */
async function pullBoth(start: (mirrorUrl: string) => Promise<PullClient>): Promise<{ alpine: string; nginx: string }> {
  const client = await start(mirror.url);
  try {
    return { alpine: await client.pull(images.alpine), nginx: await client.pull(images.nginx) };
  } finally {
    await client.close();
  }
}

const blobGets = async (): Promise<number> => {
  await front.idle();
  return front.count({ kind: 'blob', method: 'GET' });
};

describe('a cache shared by dockerd and containerd', () => {
  it('lets containerd pull what dockerd pulled cold with no upstream blob request', async () => {
    const pushed = { alpine: images.alpine.digest, nginx: images.nginx.digest };
    front.reset();
    expect(await pullBoth(startDockerd)).toEqual(pushed);
    expect(await blobGets()).toBeGreaterThan(0);

    front.reset();
    expect(await pullBoth(startContainerd)).toEqual(pushed);
    expect(await blobGets()).toBe(0);
  });
});
