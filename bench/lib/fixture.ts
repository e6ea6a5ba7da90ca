// Owns: the upstream every target mirrors — one docker-registry holding library/bench:1 (and, optionally, a
// 1 GiB blob), behind the Hub-like front with a per-stream bandwidth cap and 20 ms added to every request.
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { promisify } from 'node:util';
import { request } from 'undici';
import { startHubFront, type HubFront } from '../../test/fixtures/hub-front.js';
import { buildLayer, buildSchema2Image, pushImage, sha256, type BuiltImage } from '../../test/fixtures/images.js';
import { startRegistry, type RegistryProcess } from '../../test/fixtures/registry.js';

export const REPO = 'library/bench';
export const TAG = '1';
/** A small image every freshly started target pulls first: the cold scenarios time a cold cache, not a cold process. */
export const WARMUP_REPO = 'library/warmup';
const MiB = 2 ** 20;
const FRONT_BANDWIDTH = 100e6;
const FRONT_LATENCY_MS = 20;

/**
 * Flushes the writes the machine still owes its disk before a timed cold pull (and before its direct pull). Here
 * the upstream registry (the setup's 1 GiB push) and earlier scenarios share the mirror's disk, which in
 * production they do not, so each timed pull starts from the same disk state. Measured side by side it did not
 * move cold ÷ direct (bench/TRACE-cold.md, round 3): it keeps a setup artefact out, it is not a speed-up.
 */
export async function settleDisk(): Promise<void> {
  await promisify(execFile)('sync');
}

export interface Upstream {
  registry: RegistryProcess;
  /** What the mirrors pull through; with `auth`, Docker Hub's token protocol on every /v2/ request. */
  front: HubFront;
  /** Same bandwidth and latency, never auth: the direct pull (test/fixtures/puller.ts speaks no tokens). */
  directFront: HubFront;
  image: BuiltImage;
  /** Config + layers: what one pull moves through /blobs/. */
  imageBlobBytes: number;
  smallBlob: { digest: string; size: number };
  bigBlob: { digest: string; bytes: Buffer } | undefined;
  /** Clears the front's records and puts the latency fault back (reset() removes it). */
  resetFront(): void;
  close(): Promise<void>;
}

async function pushRawBlob(registryUrl: string, repo: string, digest: string, bytes: Buffer): Promise<void> {
  const started = await request(`${registryUrl}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await started.body.dump();
  const location = started.headers.location;
  if (started.statusCode !== 202 || typeof location !== 'string') throw new Error(`blob upload answered ${started.statusCode}`);
  const target = new URL(location, registryUrl).toString();
  const put = await request(`${target}${target.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) },
    body: bytes,
  });
  const text = await put.body.text();
  if (put.statusCode !== 201) throw new Error(`blob PUT answered ${put.statusCode}: ${text}`);
}

export async function startUpstream(o: { smoke: boolean; big: boolean; auth: boolean }): Promise<Upstream> {
  const registry = await startRegistry();
  const sizes = o.smoke ? [MiB] : [20 * MiB, 20 * MiB, 20 * MiB, MiB];
  const layers = await Promise.all(sizes.map((sizeBytes, i) => buildLayer({ sizeBytes, seed: `bench-${i}`, randomFraction: 0.95 })));
  const image = buildSchema2Image({ os: 'linux', architecture: 'amd64', layers });
  await pushImage(registry.url, REPO, TAG, image);
  const warmupLayer = await buildLayer({ sizeBytes: 256 * 1024, seed: 'bench-warmup', randomFraction: 0.95 });
  await pushImage(registry.url, WARMUP_REPO, TAG, buildSchema2Image({ os: 'linux', architecture: 'amd64', layers: [warmupLayer] }));
  const small = layers[layers.length - 1];
  if (small === undefined) throw new Error('no layers');
  let bigBlob: Upstream['bigBlob'];
  if (o.big) {
    const bytes = randomFillSync(Buffer.allocUnsafe(1024 * MiB));
    bigBlob = { digest: sha256(bytes), bytes };
    await pushRawBlob(registry.url, REPO, bigBlob.digest, bytes);
  }
  const front = await startHubFront({ upstream: registry.url, bandwidthBytesPerSec: FRONT_BANDWIDTH, ...(o.auth ? { auth: {} } : {}) });
  const directFront = o.auth ? await startHubFront({ upstream: registry.url, bandwidthBytesPerSec: FRONT_BANDWIDTH }) : front;
  const resetFront = (): void => {
    for (const f of new Set([front, directFront])) {
      f.reset();
      f.setFault({ kind: 'slow', ms: FRONT_LATENCY_MS, path: /./ });
    }
  };
  resetFront();
  const imageBlobBytes = [...image.blobs.values()].reduce((sum, b) => sum + b.size, 0);
  return {
    registry,
    front,
    directFront,
    image,
    imageBlobBytes,
    smallBlob: { digest: small.digest, size: small.size },
    bigBlob,
    resetFront,
    async close() {
      await front.close();
      if (directFront !== front) await directFront.close();
      await registry.stop();
    },
  };
}

export const FRONT = { bandwidthBytesPerSec: FRONT_BANDWIDTH, latencyMs: FRONT_LATENCY_MS };
