// Real clients (dockerd, containerd, podman, skopeo) pull Docker Hub images through regmirror, set up only as
// their Docker Hub mirror: a cold pull gets exactly the pushed images and fetches each blob upstream once, and a
// fresh client's repeat pull is served from regmirror's cache without a single upstream blob request.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { startMirror, type TestMirror } from '../fixtures/mirror.js';
import { blobsPulled, pushE2eImages, type E2eImages } from './images.js';
import { CLIENTS, type PullClient, type StartClient } from './pull-clients.js';

let images: E2eImages;
let front: HubFront;

beforeAll(async () => {
  images = await pushE2eImages(inject('registryUrl'));
  front = await startHubFront({ upstream: inject('registryUrl') });
});

afterAll(() => front?.close());

/** Digests of the blob GETs upstream saw since the last reset, once every request is answered. */
async function upstreamBlobGets(): Promise<string[]> {
  await front.idle();
  return front.requests.filter((r) => r.kind === 'blob' && r.method === 'GET').map((r) => r.path.slice(r.path.lastIndexOf('/') + 1));
}

interface PullOutcome {
  /** What the client reports having pulled. */
  digests: { alpine: string; nginx: string };
  /** Blob digests the client needed (host platform, or all where it pulls all). */
  needed: string[];
  /** Blob GETs regmirror sent upstream during the pull. */
  blobGets: string[];
}

/** Starts a fresh client, pulls alpine then nginx (every platform where it can), stops it, removes its state. */
async function pullWithFreshClient(start: StartClient, mirror: TestMirror): Promise<PullOutcome> {
  front.reset();
  const client: PullClient = await start(mirror.url);
  try {
    const alpine = await client.pull(images.alpine);
    const nginx = await client.pull(images.nginx, { allPlatforms: true });
    const o = { allPlatforms: client.allPlatforms };
    const needed = [...new Set([...blobsPulled(images.alpine, o), ...blobsPulled(images.nginx, o)])];
    return { digests: { alpine, nginx }, needed, blobGets: await upstreamBlobGets() };
  } finally {
    await client.close();
  }
}

describe.each(CLIENTS)('$name with regmirror as its Docker Hub mirror', ({ start }) => {
  let mirror: TestMirror;
  let cold: Promise<PullOutcome> | undefined;

  beforeAll(async () => {
    mirror = await startMirror(front.url);
  });

  afterAll(() => mirror?.close());

  /** The first pull on this client's empty mirror, run once by whichever test needs it first. */
  const coldPull = (): Promise<PullOutcome> => (cold ??= pullWithFreshClient(start, mirror));

  it('pulls alpine:3.19 and multi-arch nginx:1.25 cold, gets the pushed digests, and fetches each needed blob upstream once', async () => {
    const { digests, needed, blobGets } = await coldPull();
    expect(digests).toEqual({ alpine: images.alpine.digest, nginx: images.nginx.digest });
    expect([...blobGets].sort()).toEqual([...needed].sort());
  });

  it('serves the same pull by a fresh client from cache, with no upstream blob request', async () => {
    await coldPull();
    const again = await pullWithFreshClient(start, mirror);
    expect(again.digests).toEqual({ alpine: images.alpine.digest, nginx: images.nginx.digest });
    expect(again.blobGets).toEqual([]);
  });
});
