// Generates the data directory `npm run bench:scale` measures (issue 16, point 4): a cache that has run for a year,
// written straight to disk and index instead of pulled. Every file is valid content (named by the sha256 of its
// bytes); manifests are valid Docker schema 2 JSON naming their config and layers; records and tags use the
// mirror's own key formats (imported from dist/, so `npm run build` first).
//
//   repositories R (bench/r00000…), T/R tags each (v0…); each tag → its own manifest → its own config, 2 layers
//   from a base pool shared by every repository, and a window of its repository's layers (neighbouring tags
//   share layers); the rest up to B blobs are orphans (content of tags long gone), older than any GC grace.
//   Ages spread over a year by repository (r00000 is the most recently used), so LRU eviction has an order.
//
// Usage: node scripts/scale-generate.mjs [dir]  (BENCH_SCALE_BLOBS, BENCH_SCALE_TAGS, BENCH_SCALE_REPOS)
// Prints the directory; reuses it when a complete one with the same parameters exists.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Level } from 'level';
import { acceptClass, DOCKER_MANIFEST } from '../dist/src/registry/media-types.js';
import { tagKeyString } from '../dist/src/index/tag-index.js';
import { USAGE_KEY } from '../dist/src/index/blob-index.js';

const VERSION = 1;
const DAY = 86_400_000;
export const BENCH_ACCEPT = `${DOCKER_MANIFEST}, application/vnd.oci.image.manifest.v1+json`;

export function scaleParams(env = process.env) {
  const blobs = Number(env.BENCH_SCALE_BLOBS ?? 1_000_000);
  const tags = Number(env.BENCH_SCALE_TAGS ?? Math.max(1, Math.round(blobs / 10)));
  const repos = Number(env.BENCH_SCALE_REPOS ?? Math.max(1, Math.round(tags / 10)));
  return { blobs, tags, repos };
}

export function scaleDir(p, root = '/tmp/regmirror-scale') {
  return join(root, `b${p.blobs}-t${p.tags}-r${p.repos}-v${VERSION}`);
}

/** Deterministic bytes for blob number `n` (xorshift), 256–767 bytes, unique by the number in its prefix. */
function layerBytes(n) {
  const size = 256 + ((n * 2654435761) >>> 0) % 512;
  const buf = Buffer.allocUnsafe(size);
  const head = Buffer.from(`layer ${n}\n`);
  head.copy(buf);
  let x = (n + 0x9e3779b9) >>> 0 || 1;
  for (let i = head.length; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf[i] = x & 0xff;
  }
  return buf;
}

const sha256 = (bytes) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

export async function generate(dir, p, log = (line) => console.error(line)) {
  const marker = join(dir, 'complete.json');
  if (existsSync(marker)) {
    const done = JSON.parse(await readFile(marker, 'utf8'));
    log(`scale: reusing ${dir} (${done.blobs} blobs, ${done.tags} tags)`);
    return done;
  }
  await rm(dir, { recursive: true, force: true });
  const blobsDir = join(dir, 'blobs', 'sha256');
  await Promise.all(Array.from({ length: 256 }, (_, i) => mkdir(join(blobsDir, i.toString(16).padStart(2, '0')), { recursive: true })));
  await mkdir(join(dir, 'tmp'), { recursive: true });
  const db = new Level(join(dir, 'index'), { valueEncoding: 'json' });
  await db.open();
  const blobsLevel = db.sublevel('blobs', { valueEncoding: 'json' });
  const tagsLevel = db.sublevel('tags', { valueEncoding: 'json' });
  const metaLevel = db.sublevel('meta', { valueEncoding: 'json' });
  const now = Date.now();
  const started = performance.now();
  const acceptKey = acceptClass(BENCH_ACCEPT).key;

  let ops = [];
  const batches = new Set();
  const writes = new Set();
  const totals = { bytes: 0, count: 0 };
  const flushOps = async () => {
    if (ops.length === 0) return;
    const batch = db.batch(ops);
    ops = [];
    batches.add(batch);
    void batch.finally(() => batches.delete(batch));
    if (batches.size >= 4) await Promise.race(batches);
  };
  const put = async (bytes, record) => {
    const digest = sha256(bytes);
    const hex = digest.slice(7);
    const write = writeFile(join(blobsDir, hex.slice(0, 2), hex), bytes);
    writes.add(write);
    void write.finally(() => writes.delete(write));
    if (writes.size >= 256) await Promise.race(writes);
    ops.push({ type: 'put', sublevel: blobsLevel, key: digest, value: { size: bytes.length, ...record } });
    totals.bytes += bytes.length;
    totals.count++;
    if (ops.length >= 10_000) await flushOps();
    if (totals.count % 50_000 === 0) {
      const s = (performance.now() - started) / 1000;
      log(`scale: ${totals.count}/${p.blobs} blobs, ${s.toFixed(0)} s (${(totals.count / s).toFixed(0)}/s)`);
    }
    return { digest, size: bytes.length };
  };
  const blobRecord = (at) => ({ mediaType: 'application/octet-stream', manifest: false, createdAt: at, lastAccessAt: at });

  const tagsPerRepo = Math.max(1, Math.floor(p.tags / p.repos));
  const base = Math.max(1, Math.min(1000, Math.floor(p.blobs / 1000)));
  const orphansWanted = Math.floor(p.blobs * 0.05);
  const layersPerRepo = Math.max(1, Math.floor((p.blobs - 2 * tagsPerRepo * p.repos - base - orphansWanted) / p.repos));
  const window = Math.min(layersPerRepo, Math.ceil(layersPerRepo / tagsPerRepo) + 1);
  let n = 0;
  const baseLayers = [];
  for (let i = 0; i < base; i++) baseLayers.push(await put(layerBytes(n++), blobRecord(now - DAY)));
  let tagCount = 0;
  for (let r = 0; r < p.repos; r++) {
    const repo = `bench/r${String(r).padStart(5, '0')}`;
    // r00000 was used an hour ago, the last repository a year ago.
    const at = now - 3_600_000 - Math.floor((r / p.repos) * 365 * DAY);
    const layers = [];
    for (let i = 0; i < layersPerRepo; i++) layers.push(await put(layerBytes(n++), blobRecord(at)));
    for (let t = 0; t < tagsPerRepo; t++) {
      const start = Math.floor((t * layersPerRepo) / tagsPerRepo);
      const own = Array.from({ length: window }, (_, j) => layers[(start + j) % layersPerRepo]);
      const chosen = [baseLayers[(r + t) % base], baseLayers[(r * 7 + t + 1) % base], ...own];
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', created: new Date(at).toISOString(), config: { Labels: { repo, tag: `v${t}` } }, rootfs: { type: 'layers', diff_ids: chosen.map((l) => l.digest) } }));
      const configDesc = await put(config, { mediaType: 'application/vnd.docker.container.image.v1+json', manifest: false, createdAt: at, lastAccessAt: at });
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: DOCKER_MANIFEST,
          config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: configDesc.size, digest: configDesc.digest },
          layers: chosen.map((l) => ({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: l.size, digest: l.digest })),
        }),
      );
      const m = await put(manifest, { mediaType: DOCKER_MANIFEST, manifest: true, createdAt: at, lastAccessAt: at });
      const entry = { upstream: 'docker.io', repo, tag: `v${t}`, acceptKey, digest: m.digest, mediaType: DOCKER_MANIFEST, size: m.size, checkedAt: at, pulledAt: at, hits: 1 + (t % 5) };
      ops.push({ type: 'put', sublevel: tagsLevel, key: tagKeyString(entry), value: entry });
      tagCount++;
    }
  }
  // Content of tags long gone: unreachable, older than any grace period.
  while (totals.count < p.blobs) await put(layerBytes(n), blobRecord(now - 30 * DAY - ((n++ * 7919) % 335) * DAY));
  ops.push({ type: 'put', sublevel: metaLevel, key: USAGE_KEY, value: totals });
  await flushOps();
  await Promise.all([...writes, ...batches]);
  await db.compactRange('\x00', '\xff').catch(() => undefined);
  await db.close();
  const done = { ...p, blobs: totals.count, bytes: totals.bytes, tags: tagCount, tagsPerRepo, layersPerRepo, window, base, generatedAt: now, seconds: (performance.now() - started) / 1000 };
  await writeFile(marker, JSON.stringify(done));
  log(`scale: generated ${dir}: ${done.blobs} blobs (${(done.bytes / 2 ** 20).toFixed(0)} MiB), ${done.tags} tags in ${done.seconds.toFixed(0)} s`);
  return done;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const p = scaleParams();
  const dir = process.argv[2] ?? scaleDir(p);
  await generate(dir, p);
  console.log(dir);
}
