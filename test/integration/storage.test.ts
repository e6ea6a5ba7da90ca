// Issue 6: the store under a quota (LRU eviction, pins), garbage collection (CLI and scheduled, racing a
// download), a lost index rebuilt from the files, and a disk that fills up mid-pull.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { CommandContext } from '../../src/cli/command.js';
import { fsck } from '../../src/cli/fsck.js';
import { gc } from '../../src/cli/gc.js';
import { pin } from '../../src/cli/pin.js';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { buildLayer, buildSchema2Image, pushImage, type TestImage } from '../fixtures/images.js';
import { metricValue, startMirror } from '../fixtures/mirror.js';
import { getBlob, pull } from '../fixtures/puller.js';

const run = promisify(execFile);
const MiB = 2 ** 20;

let front: HubFront;
beforeAll(async () => {
  front = await startHubFront({ upstream: inject('registryUrl') });
});
afterAll(() => front?.close());

/** Digest → size of every file in the store. */
async function storedFiles(dataDir: string): Promise<Map<string, number>> {
  const files = new Map<string, number>();
  const root = join(dataDir, 'blobs', 'sha256');
  for (const prefix of await readdir(root).catch(() => [] as string[])) {
    for (const name of await readdir(join(root, prefix))) files.set(`sha256:${name}`, (await stat(join(root, prefix, name))).size);
  }
  return files;
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

function imageDigests(image: TestImage): string[] {
  return [image.digest, ...image.platforms.flatMap((p) => [p.config, ...p.layers.map((l) => l.digest)])];
}

function cliIn(args: string[], env: Record<string, string>, configFile?: string): { ctx: CommandContext; output: () => string } {
  let text = '';
  return { ctx: { args, configFile, env, out: (chunk) => (text += chunk) }, output: () => text };
}

const cli = (args: string[], env: Record<string, string>) => cliIn(args, env);

describe('quota and LRU eviction', () => {
  const images: TestImage[] = [];
  beforeAll(async () => {
    // Six images of three distinct 2.5 MiB layers each (no shared base), so each eviction frees whole images.
    for (let i = 0; i < 6; i++) {
      const layers = await Promise.all([0, 1, 2].map((j) => buildLayer({ sizeBytes: 2.5 * MiB, seed: `quota-${i}-${j}`, randomFraction: 0.95 })));
      images.push(await pushImage(inject('registryUrl'), `quota/app${i}`, '1', buildSchema2Image({ os: 'linux', architecture: 'amd64', layers })));
    }
  });

  it('keeps disk use under the high mark, evicts least recently used first, never a pinned image; pulls stay correct', async () => {
    // Manifests and layers (configs are a few hundred bytes more).
    const setBytes = sum(images.map((img) => img.size + sum(img.platforms[0]!.layers.map((l) => l.size))));
    const maxBytes = Math.floor(setBytes * 0.6);
    const high = Math.floor(maxBytes * 0.9);
    const pinned = images[1]!;
    const mirror = await startMirror(front.url, {
      config: { cache: { maxBytes: String(maxBytes), highWatermark: 0.9, lowWatermark: 0.75, pins: [`quota/app1:1`] } },
    });
    try {
      const used: number[] = [];
      for (const [i, image] of images.entries()) {
        await pull(mirror.url, image.repo, image.tag); // verifies every digest
        // A client has its last byte once the digest checks out; the rename into the store follows.
        await expect.poll(async () => metricValue(await mirror.metrics(), 'regmirror_blob_fills_in_flight')).toBe(0);
        const files = await storedFiles(mirror.dataDir);
        used.push(sum(files.values()));
        expect(sum(files.values()), `after pulling ${image.repo}`).toBeLessThanOrEqual(high);
        // Every pinned digest is still there.
        if (i >= 1) for (const d of imageDigests(pinned)) expect(files.has(d), `pinned ${d} of ${JSON.stringify(imageDigests(pinned))} after ${image.repo}; stored ${[...files.keys()].join(",")}`).toBe(true);
        // LRU: an older unpinned image is never kept in full while a newer one lost a layer.
        const complete = images.slice(0, i + 1).map((img) => img.platforms[0]!.layers.every((l) => files.has(l.digest)));
        const firstKept = complete.findIndex((c, k) => c && k !== 1);
        const lastBroken = complete.map((c, k) => (!c && k !== 1 ? k : -1)).reduce((a, b) => Math.max(a, b), -1);
        if (firstKept !== -1 && lastBroken !== -1) expect(lastBroken, `eviction order after ${image.repo}`).toBeLessThan(firstKept);
      }
      const metrics = await mirror.metrics();
      expect(metricValue(metrics, 'regmirror_evictions_total')).toBeGreaterThan(0);
      const mib = (n: number) => (n / MiB).toFixed(1);
      console.log(`quota: set ${mib(setBytes)} MiB, maxBytes ${mib(maxBytes)} MiB, high mark ${mib(high)} MiB; stored after each pull: ${used.map(mib).join(', ')} MiB; ${metricValue(metrics, 'regmirror_evictions_total')} evictions`);
      expect(metricValue(metrics, 'regmirror_store_bytes')).toBe(sum((await storedFiles(mirror.dataDir)).values()));
      // The oldest image was evicted; pulling it again fetches it again, byte-correct.
      front.reset();
      await pull(mirror.url, images[0]!.repo, images[0]!.tag);
      await front.idle();
      expect(front.count({ method: 'GET', kind: 'blob' })).toBeGreaterThan(0);
      expect(sum((await storedFiles(mirror.dataDir)).values())).toBeLessThanOrEqual(high);
    } finally {
      await mirror.close();
    }
  });
});

describe('garbage collection', () => {
  it('gc --dry-run and gc agree; only content no tag or pin reaches goes; a pinned digest stays', async () => {
    const { schema2, user, multi } = inject('images');
    const mirror = await startMirror(front.url, { config: { cache: { gcGrace: '0s', gcInterval: '0s' } } });
    try {
      await pull(mirror.url, schema2.repo, schema2.tag); // reachable from its tag
      const userTop = user.platforms[0]!.layers[1]!;
      await getBlob(mirror.url, user.repo, userTop.digest); // by digest only: unreachable
      const arm64 = multi.platforms.find((p) => p.architecture === 'arm64')!;
      await getBlob(mirror.url, multi.repo, arm64.layers[1]!.digest); // unreachable but pinned below
      await mirror.stop();
      const env = { REGMIRROR_DATA: mirror.dataDir, REGMIRROR_UPSTREAM: front.url };
      const configFile = join(mirror.dataDir, 'gc.yaml');
      await writeFile(configFile, 'cache:\n  gcGrace: "0s"\n');
      const cli = (args: string[]) => cliIn(args, env, configFile);
      const pinned = cli([`library/multi@${arm64.layers[1]!.digest}`]);
      await pin(pinned.ctx);
      expect(pinned.output()).toContain('pinned docker.io/library/multi@sha256:');

      const dry = cli(['--dry-run']);
      await gc(dry.ctx);
      const wouldGo = dry.output().split('\n').filter((l) => l.startsWith('would remove sha256:'));
      expect(wouldGo.map((l) => l.split(' ')[2])).toEqual([userTop.digest]);
      expect((await storedFiles(mirror.dataDir)).has(userTop.digest)).toBe(true);

      const real = cli([]);
      await gc(real.ctx);
      const removed = real.output().split('\n').filter((l) => l.startsWith('removed sha256:'));
      expect(removed.map((l) => l.replace(/^removed /, ''))).toEqual(wouldGo.map((l) => l.replace(/^would remove /, '')));
      const files = await storedFiles(mirror.dataDir);
      expect(files.has(userTop.digest)).toBe(false);
      expect(files.has(arm64.layers[1]!.digest)).toBe(true);
      for (const d of imageDigests(schema2)) expect(files.has(d), d).toBe(true);
      const check = cli([]);
      await fsck(check.ctx);
      expect(check.output()).toContain('no problems found');
    } finally {
      await mirror.close();
    }
  });

  it('a blob being downloaded during a GC survives it, and is collected once done and unreachable', async () => {
    const { multi } = inject('images');
    const big = multi.platforms.find((p) => p.architecture === 'amd64')!.layers[1]!;
    const mirror = await startMirror(front.url, { config: { cache: { gcGrace: '0s', gcInterval: '0s' } } });
    front.setBandwidth(10_000_000);
    try {
      const download = getBlob(mirror.url, multi.repo, big.digest);
      await expect.poll(async () => metricValue(await mirror.metrics(), 'regmirror_blob_fills_in_flight')).toBe(1);
      const during = await mirror.mirror.gc();
      expect(during.removed.map((r) => r.digest)).not.toContain(big.digest);
      expect(await download).toBe(big.size);
      await expect.poll(async () => (await storedFiles(mirror.dataDir)).has(big.digest)).toBe(true);
      await expect.poll(async () => metricValue(await mirror.metrics(), 'regmirror_blob_fills_in_flight')).toBe(0);
      // Fetched by digest only, so nothing reaches it: the next collection takes it.
      const after = await mirror.mirror.gc();
      expect(after.removed.map((r) => r.digest)).toContain(big.digest);
      expect((await storedFiles(mirror.dataDir)).has(big.digest)).toBe(false);
      expect(metricValue(await mirror.metrics(), 'regmirror_gc_freed_bytes_total')).toBe(after.bytes);
    } finally {
      front.reset();
      await mirror.close();
    }
  });
});

describe('fsck --rebuild-index', () => {
  it('restores a working cache from the files after the index directory is deleted, with no blob downloaded again', async () => {
    const { multi } = inject('images');
    const mirror = await startMirror(front.url);
    try {
      await pull(mirror.url, multi.repo, multi.tag);
      await mirror.stop();
      await rm(join(mirror.dataDir, 'index'), { recursive: true });
      const env = { REGMIRROR_DATA: mirror.dataDir };
      const broken = cli([], env);
      // A fresh empty index is not a problem by itself: the files are simply not indexed.
      await fsck(broken.ctx);
      expect(broken.output()).toMatch(/file\(s\) without a record/);
      const rebuild = cli(['--rebuild-index', '--verify-digests'], env);
      await fsck(rebuild.ctx);
      expect(rebuild.output()).toContain('no problems found');
      expect(rebuild.output()).toMatch(/index record\(s\) \(rebuilt\)/);

      front.reset();
      const again = await startMirror(front.url, { dataDir: mirror.dataDir });
      try {
        const pulled = await pull(again.url, multi.repo, multi.tag);
        expect(pulled.digest).toBe(multi.digest);
        await front.idle();
        // The tag's record went with the index: the tag is asked again, with one GET (a tag never seen, issue 16);
        // the platform manifest and the blobs come from disk.
        expect(front.count({ method: 'GET', kind: 'blob' })).toBe(0);
        expect(front.requests.filter((r) => r.method === 'GET' && r.kind === 'manifest').map((r) => r.path)).toEqual([
          `/v2/${multi.repo}/manifests/${multi.tag}`,
        ]);
        // containerd asks /blobs/ for manifests: the rebuilt record knows the media type.
        const res = await fetch(`${again.url}/v2/${multi.repo}/blobs/${multi.digest}`);
        expect(res.headers.get('content-type')).toBe(multi.mediaType);
        await res.body?.cancel();
      } finally {
        await again.stop();
      }
    } finally {
      await mirror.close();
    }
  });
});

describe('a full disk', () => {
  let mount: string;
  beforeAll(async () => {
    mount = await mkdtemp(join(tmpdir(), 'regmirror-small-'));
    // A 40 MiB filesystem of our own (root, as in CI); a filler leaves room for small blobs only.
    await run('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', mount]);
  });
  afterAll(async () => {
    await run('umount', [mount]).catch(() => undefined);
    await rm(mount, { recursive: true, force: true });
  });

  it('streams what cannot be written, caches nothing partial, and caches again once space is freed', async () => {
    const { multi } = inject('images');
    const amd64 = multi.platforms.find((p) => p.architecture === 'amd64')!;
    const big = amd64.layers[1]!; // 30 MiB: does not fit
    const dataDir = join(mount, 'data');
    await mkdir(dataDir);
    const filler = join(mount, 'filler');
    await writeFile(filler, Buffer.alloc(28 * MiB));
    const mirror = await startMirror(front.url, { dataDir });
    try {
      const first = await pull(mirror.url, multi.repo, multi.tag); // every digest verified by the puller
      expect(first.blobs.get(big.digest)).toBe(big.size);
      await expect.poll(async () => metricValue(await mirror.metrics(), 'regmirror_blob_fills_in_flight')).toBe(0);
      expect(metricValue(await mirror.metrics(), 'regmirror_store_write_failures_total', { reason: 'enospc' })).toBeGreaterThan(0);
      expect((await storedFiles(dataDir)).has(big.digest)).toBe(false);
      expect(await readdir(join(dataDir, 'tmp'))).toEqual([]);
      // Still full: a second pull also succeeds (straight from upstream for what does not fit).
      await pull(mirror.url, multi.repo, multi.tag);

      await rm(filler);
      await pull(mirror.url, multi.repo, multi.tag);
      await expect.poll(async () => (await storedFiles(dataDir)).get(big.digest)).toBe(big.size);
      front.reset();
      await pull(mirror.url, multi.repo, multi.tag);
      await front.idle();
      expect(front.count({ method: 'GET', kind: 'blob' })).toBe(0);
    } finally {
      await mirror.stop();
    }
    const check = cli(['--verify-digests'], { REGMIRROR_DATA: dataDir });
    await fsck(check.ctx);
    expect(check.output()).toContain('no problems found');
  });
});
