// Graceful shutdown: new connections are refused at once, responses in flight finish, downloads end cleanly.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { startMirror } from '../fixtures/mirror.js';
import { getBlob } from '../fixtures/puller.js';

let front: HubFront;
beforeAll(async () => {
  front = await startHubFront({ upstream: inject('registryUrl') });
});
afterAll(() => front?.close());

describe('shutdown', () => {
  it('lets a response in flight finish, then refuses new connections', async () => {
    const mirror = await startMirror(front.url, { config: { shutdownTimeout: '20s' } });
    const layer = inject('images').multi.platforms[0]?.layers[1] as { digest: string; size: number };
    front.setBandwidth(15e6);
    const inFlight = getBlob(mirror.url, 'library/multi', layer.digest);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const closed = mirror.stop();
    await expect(request(`${mirror.url}/v2/`)).rejects.toThrow();
    expect(await inFlight).toBe(layer.size);
    await closed;
    front.reset();
    await mirror.close();
  });

  it('cuts what is left when the grace period ends, and removes the unfinished download', async () => {
    const mirror = await startMirror(front.url, { config: { shutdownTimeout: '300ms' } });
    const layer = inject('images').multi.platforms[0]?.layers[1] as { digest: string; size: number };
    front.setBandwidth(5e6);
    const inFlight = getBlob(mirror.url, 'library/multi', layer.digest).catch((err: Error) => err);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const started = performance.now();
    await mirror.stop();
    expect(performance.now() - started).toBeLessThan(3000);
    expect(await inFlight).toBeInstanceOf(Error);
    expect(await readdir(join(mirror.dataDir, 'tmp'))).toEqual([]);
    expect(await readdir(join(mirror.dataDir, 'blobs'))).toEqual([]);
    front.reset();
    // A restart on the same data directory finds no leftover and serves the blob correctly.
    const again = await startMirror(front.url, { dataDir: mirror.dataDir });
    expect(await getBlob(again.url, 'library/multi', layer.digest)).toBe(layer.size);
    await again.close();
  });
});
