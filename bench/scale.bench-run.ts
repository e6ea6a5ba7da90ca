// Issue 16, point 4: how the cost grows with the cache. `npm run bench:scale` measures regmirror on a generated
// cache of a million blobs and 100,000 tags (scripts/scale-generate.mjs, cached under /tmp/regmirror-scale)
// side by side with the same shapes in a nearly empty cache (2,000 blobs): start to ready, RSS at rest, warm
// manifest-by-tag and blob-HEAD latency, one GC pass and one eviction pass under load (p99 during the pass
// against idle, peak RSS; several samples, judged on the median), and `ls` and `fsck` (no digests).
// Writes bench/RESULTS-scale.md. BENCH_SCALE_SAMPLES sets the number of blob-HEAD runs and pass samples (3).
// BENCH_SCALE_BLOBS (and _TAGS, _REPOS) scale it down for a smoke run. The mirror runs offline on a working copy
// (blob files hard-linked, index copied), so the generated cache is reused and never changed.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Pool } from 'undici';
import { expect, test } from 'vitest';

const run = promisify(execFile);
const ROOT = new URL('..', import.meta.url).pathname;
const MAIN = join(ROOT, 'dist/src/main.js');
const MiB = 2 ** 20;
const TOKEN = 'bench-scale-admin-token';
const ACCEPT = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json';
const CONNECTIONS = 16;
const SECONDS = Number(process.env.BENCH_SCALE_SECONDS ?? 8);
/** A steady, busy load (not saturation): what a pass must not stall is serving at a normal rate. */
const RATE = Number(process.env.BENCH_SCALE_RATE ?? 2000);
/** The eviction pass's idle: a fresh mirror's first seconds under the same load (the pass takes ~15 s). */
const FRESH_SECONDS = 15;
/**
 * Blob-HEAD runs per side, and GC + eviction passes, each on a fresh working copy: their p99 ratios are medians
 * of these, as one sample moved by half on this shared machine (eviction 1.39× then 2.88×, idle 80 then 23 ms).
 */
const SAMPLES = Number(process.env.BENCH_SCALE_SAMPLES ?? 3);

interface Generated {
  dir: string;
  blobs: number;
  bytes: number;
  tags: number;
  repos: number;
  tagsPerRepo: number;
  seconds: number;
}

/** Generates (or reuses) a cache: a child process, so it can run under `nice` with a larger thread pool. */
async function generated(env: Record<string, string>): Promise<Generated> {
  const { stdout } = await run('nice', ['-n', '10', process.execPath, join(ROOT, 'scripts/scale-generate.mjs')], {
    env: { ...process.env, UV_THREADPOOL_SIZE: '16', ...env },
    maxBuffer: 16 * MiB,
  });
  const dir = stdout.trim().split('\n').at(-1) ?? '';
  return { dir, ...(JSON.parse(await readFile(join(dir, 'complete.json'), 'utf8')) as Omit<Generated, 'dir'>) };
}

/** A working copy: blob files hard-linked (GC and eviction only unlink), the index copied. */
async function workingCopy(from: string, to: string): Promise<void> {
  await rm(to, { recursive: true, force: true });
  await mkdir(join(to, 'tmp'), { recursive: true });
  await run('cp', ['-al', join(from, 'blobs'), join(to, 'blobs')], { maxBuffer: MiB });
  await run('cp', ['-r', join(from, 'index'), join(to, 'index')]);
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function rssOf(pid: number | undefined, field: 'VmRSS' | 'RssAnon' = 'VmRSS'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0) * 1024;
}

interface Running {
  child: ChildProcess;
  url: string;
  readyMs: number;
  /** Resolves with the first log line whose msg is this (logged already, or to come). */
  logged(msg: string): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

async function startMirror(dataDir: string, cache: Record<string, unknown> = {}): Promise<Running> {
  const port = await freePort();
  const config = join(dataDir, '..', `${port}.yaml`);
  await writeFile(config, JSON.stringify({ admin: { token: TOKEN }, cache: { gcInterval: 'off', ...cache } }));
  const started = performance.now();
  const child = spawn(process.execPath, [MAIN, 'serve', '--config', config, '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--upstream', 'none', '--log-level', 'info'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const waiting = new Map<string, (line: Record<string, unknown>) => void>();
  const seen = new Map<string, Record<string, unknown>>();
  let buffered = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const text of lines) {
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (!seen.has(String(line.msg))) seen.set(String(line.msg), line);
      const resolve = waiting.get(String(line.msg));
      if (resolve) {
        waiting.delete(String(line.msg));
        resolve(line);
      }
    }
  });
  const url = `http://127.0.0.1:${port}`;
  let readyMs = NaN;
  for (let i = 0; i < 6000 && child.exitCode === null; i++) {
    const ok = await fetch(`${url}/v2/`).then((r) => r.status === 200, () => false);
    if (ok) {
      readyMs = performance.now() - started;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  if (Number.isNaN(readyMs)) throw new Error('the mirror did not answer /v2/ within 60 s');
  return {
    child,
    url,
    readyMs,
    logged: (msg) => new Promise((resolve) => (seen.has(msg) ? resolve(seen.get(msg) as Record<string, unknown>) : waiting.set(msg, resolve))),
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(config, { force: true });
    },
  };
}

/** Repositories whose tags the like-for-like latency runs ask for, on both sides: 4 × 10 = 40 tags. */
const SAME_REPOS = 4;

function tagPaths(repos: number, g: Generated): string[] {
  const paths: string[] = [];
  for (let r = 0; r < repos; r++) for (let t = 0; t < g.tagsPerRepo; t++) paths.push(`/v2/bench/r${String(r).padStart(5, '0')}/manifests/v${t}`);
  return paths;
}

/** Every path once, 8 at a time: what "warm" means for a working set larger than a warm-up run visits. */
async function visitAll(url: string, paths: readonly string[]): Promise<void> {
  const pool = new Pool(url, { connections: 8 });
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < paths.length) {
        const res = await pool.request({ path: paths[next++] as string, method: 'GET', headers: { accept: ACCEPT } });
        await res.body.dump();
      }
    }),
  );
  await pool.close();
}

/**
 * The paths requests pick from: tags of the most recently used fifth of the repositories, and their blobs in
 * SAMPLES groups (one per blob-HEAD run, from different tags, so that every run meets blobs no request touched
 * yet, as the first did before runs were repeated).
 */
async function workingSet(url: string, g: Generated): Promise<{ manifests: string[]; blobs: string[][] }> {
  const manifests = tagPaths(Math.max(1, Math.floor(g.repos / 5)), g);
  const blobs: string[][] = Array.from({ length: SAMPLES }, () => []);
  // Blobs from a sample of those manifests (fetching the manifests warms none of their blobs' records).
  const picks = Math.min(500 * SAMPLES, manifests.length);
  for (let i = 0; i < picks; i++) {
    const path = manifests[Math.floor((i * manifests.length) / picks)] as string;
    const res = await fetch(`${url}${path}`, { headers: { accept: ACCEPT } });
    expect(res.status, path).toBe(200);
    const m = (await res.json()) as { layers: Array<{ digest: string }> };
    const repo = path.split('/manifests/')[0] as string;
    for (const l of m.layers) blobs[i % SAMPLES]?.push(`${repo}/blobs/${l.digest}`);
  }
  return { manifests, blobs };
}

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

interface Latency {
  p50: number;
  p99: number;
  rps: number;
  errors: number;
}

/**
 * RATE requests a second over CONNECTIONS connections, each request to a random path, for `seconds` or until
 * stop(). Latency counts from when a request was due, not when it was sent (as wrk2 does): a stalled mirror
 * shows as the queue it builds, not as fewer samples. Our own loop, not autocannon: its parser waits for a
 * body after HEAD, and it reports whole milliseconds.
 */
function load(url: string, paths: string[], method: 'GET' | 'HEAD', seconds: number): Promise<Latency> & { stop(): void } {
  const pool = new Pool(url, { connections: CONNECTIONS, pipelining: 1 });
  const latencies: number[] = [];
  let errors = 0;
  let stopped = false;
  const interval = (CONNECTIONS / RATE) * 1000;
  const started = performance.now();
  const end = started + seconds * 1000;
  const worker = async (offset: number): Promise<void> => {
    let due = started + offset;
    while (!stopped && due < end) {
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const path = paths[Math.floor(Math.random() * paths.length)] as string;
      // A timer may fire a little early: then the request counts from when it was sent.
      const from = Math.min(due, performance.now());
      try {
        const res = await pool.request({ path, method, headers: { accept: ACCEPT } });
        await res.body.dump();
        if (res.statusCode !== 200) errors++;
      } catch {
        errors++;
      }
      latencies.push(performance.now() - from);
      due += interval;
    }
  };
  const done = Promise.all(Array.from({ length: CONNECTIONS }, (_, i) => worker((i * interval) / CONNECTIONS))).then(async () => {
    const elapsed = (performance.now() - started) / 1000;
    await pool.close();
    latencies.sort((a, b) => a - b);
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
    return { p50: at(0.5), p99: at(0.99), rps: latencies.length / elapsed, errors };
  });
  return Object.assign(done, { stop: () => void (stopped = true) });
}

/** Runs `pass` under manifest load; the load stops when the pass ends. Peak RSS sampled every 50 ms. */
async function underLoad<T>(m: Running, paths: string[], pass: () => Promise<T>): Promise<{ value: T; seconds: number; during: Latency; peakRss: number }> {
  let peak = 0;
  const sampler = setInterval(() => void rssOf(m.child.pid).then((rss) => (peak = Math.max(peak, rss))), 50);
  const loading = load(m.url, paths, 'GET', 600);
  const started = performance.now();
  const value = await pass();
  const seconds = (performance.now() - started) / 1000;
  loading.stop();
  const during = await loading;
  clearInterval(sampler);
  return { value, seconds, during, peakRss: peak };
}

async function timed(args: string[], dataDir: string): Promise<{ seconds: number; peakRss: number; stdout: string }> {
  const started = performance.now();
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, REGMIRROR_DATA: dataDir, REGMIRROR_UPSTREAM: 'none' }, stdio: ['ignore', 'pipe', 'ignore'] });
  let stdout = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  let peak = 0;
  const sampler = setInterval(() => void rssOf(child.pid).then((rss) => (peak = Math.max(peak, rss))), 50);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearInterval(sampler);
  expect(code === 0 || args[0] === 'fsck', `${args.join(' ')} exited ${code}`).toBe(true);
  return { seconds: (performance.now() - started) / 1000, peakRss: peak, stdout };
}

interface Side {
  g: Generated;
  readyMs: number;
  rssAtRest: number;
  /**
   * The anonymous part of it (heap, table, buffers): the rest is file-backed, mostly LevelDB's table files mapped
   * when a scan (the blob table's, GC's, eviction's) has read them, clean pages the kernel takes back under pressure.
   */
  anonAtRest: number;
  /** The same 40 tags on both sides, after a warm-up run over them. */
  manifests: Latency;
  /** The whole working set (a fifth of the repositories' tags), after one GET of each and a warm-up run. */
  manifestsWide: Latency;
  rssWide: number;
  /** Median p50/p99/rate over SAMPLES runs, each over its own group of blobs. */
  blobHeads: Latency;
  blobHeadRuns: Latency[];
}

async function measureSide(g: Generated, work: string): Promise<{ side: Side; mirror: Running; set: { manifests: string[]; blobs: string[][] } }> {
  const mirror = await startMirror(work);
  const set = await workingSet(mirror.url, g);
  const same = tagPaths(SAME_REPOS, g);
  await load(mirror.url, same, 'GET', 2); // warm-up
  // At rest means with the blob table built (its scan runs in the background after start).
  await mirror.logged('blob table built');
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const rssAtRest = await rssOf(mirror.child.pid);
  const anonAtRest = await rssOf(mirror.child.pid, 'RssAnon');
  const manifests = await load(mirror.url, same, 'GET', SECONDS);
  await visitAll(mirror.url, set.manifests);
  await load(mirror.url, set.manifests, 'GET', 2);
  const manifestsWide = await load(mirror.url, set.manifests, 'GET', SECONDS);
  const rssWide = await rssOf(mirror.child.pid);
  const blobHeadRuns: Latency[] = [];
  for (const blobs of set.blobs) blobHeadRuns.push(await load(mirror.url, blobs, 'HEAD', SECONDS));
  const blobHeads = {
    p50: median(blobHeadRuns.map((r) => r.p50)),
    p99: median(blobHeadRuns.map((r) => r.p99)),
    rps: median(blobHeadRuns.map((r) => r.rps)),
    errors: blobHeadRuns.reduce((n, r) => n + r.errors, 0),
  };
  return { side: { g, readyMs: mirror.readyMs, rssAtRest, anonAtRest, manifests, manifestsWide, rssWide, blobHeads, blobHeadRuns }, mirror, set };
}

interface PassSample {
  idleFresh: Latency;
  idle: Latency;
  rssBeforeGc: number;
  gc: { value: { removed: unknown[]; bytes: number; reachable: number }; seconds: number; during: Latency; peakRss: number };
  eviction: { value: Record<string, unknown>; seconds: number; during: Latency; peakRss: number };
}

/**
 * One GC pass and one eviction pass on the big cache, each in a fresh process (not the one `ls` grew), under the
 * same load. Eviction runs from the moment the mirror answers, so its idle is the first FRESH_SECONDS of a fresh
 * mirror without a quota; GC's idle is the run just before it, in the process it then runs in.
 */
async function passSample(work: string, paths: string[]): Promise<PassSample> {
  const mirror = await startMirror(work);
  const idleFresh = await load(mirror.url, paths, 'GET', FRESH_SECONDS);
  const idle = await load(mirror.url, paths, 'GET', SECONDS);
  const rssBeforeGc = await rssOf(mirror.child.pid);

  // One GC pass (the orphans: about 5% of the blobs) under load.
  const gc = await underLoad(mirror, paths, async () => {
    const res = await fetch(`${mirror.url}/api/v1/admin/gc`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(200);
    return (await res.json()) as { removed: unknown[]; bytes: number; reachable: number };
  });
  console.log(`scale: gc ${gc.seconds.toFixed(1)} s, removed ${gc.value.removed.length}, p99 ${idle.p99.toFixed(2)} → ${gc.during.p99.toFixed(2)} ms`);
  const status = (await (await fetch(`${mirror.url}/api/v1/status`)).json()) as { disk: { usedBytes: number; blobs: number } };
  await mirror.stop();

  // One eviction pass: a quota whose high mark is below what is stored; the mirror evicts at start, to the
  // low mark (about a tenth of the bytes), while the load runs.
  const used = status.disk.usedBytes;
  const evicting = await startMirror(work, { maxBytes: Math.floor(used / 0.95), highWatermark: 0.9, lowWatermark: 0.85 });
  const evictionLine = evicting.logged('evicted least recently used content');
  const eviction = await underLoad(evicting, paths, async () => {
    const line = await Promise.race([evictionLine, evicting.logged('eviction could not free enough (pinned or in use)')]);
    return line;
  });
  console.log(`scale: eviction ${eviction.seconds.toFixed(1)} s after ready, freed ${String(eviction.value.freed)}, p99 ${idleFresh.p99.toFixed(2)} → ${eviction.during.p99.toFixed(2)} ms`);
  await evicting.stop();
  return { idleFresh, idle, rssBeforeGc, gc, eviction };
}

test('regmirror at the scale of a year-old cache', async () => {
  const totalStart = performance.now();
  const small = await generated({ BENCH_SCALE_BLOBS: '2000', BENCH_SCALE_TAGS: '200', BENCH_SCALE_REPOS: '20' });
  const big = await generated({});
  const workRoot = join('/tmp/regmirror-scale', `work-${process.pid}`);
  const smallWork = join(workRoot, 'small');
  const bigWork = join(workRoot, 'big');
  try {
    await workingCopy(small.dir, smallWork);
    const copyStart = performance.now();
    await workingCopy(big.dir, bigWork);
    const copySeconds = (performance.now() - copyStart) / 1000;
    console.log(`scale: working copies ready (${copySeconds.toFixed(0)} s)`);

    const emptySide = await measureSide(small, smallWork);
    await emptySide.mirror.stop();
    console.log(`scale: empty side measured`);
    const bigSide = await measureSide(big, bigWork);
    console.log(`scale: big side measured`);
    const { mirror: warmed, set } = bigSide;

    // `ls` through the running mirror's admin socket: the image list (also the status page's).
    const ls = await timed(['ls'], bigWork);
    console.log(`scale: ls ${ls.seconds.toFixed(1)} s`);
    await warmed.stop();

    // The passes are compared with the same kind of process: a fresh one (not the one `ls` grew), under the
    // same load. Eviction runs from the moment the mirror answers, so its idle is the first FRESH_SECONDS of a
    // fresh mirror without a quota; GC's idle is the run just before it, in the process it then runs in.
    // SAMPLES of each pass, each on a fresh working copy (the passes remove content); the ratios are medians.
    const samples: PassSample[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      if (i > 0) await workingCopy(big.dir, bigWork);
      samples.push(await passSample(bigWork, set.manifests));
    }
    const gcRatio = median(samples.map((x) => x.gc.during.p99 / x.idle.p99));
    const evictionRatio = median(samples.map((x) => x.eviction.during.p99 / x.idleFresh.p99));

    const fsck = await timed(['fsck'], bigWork);
    console.log(`scale: fsck ${fsck.seconds.toFixed(1)} s`);

    const e = emptySide.side;
    const b = bigSide.side;
    const ms = (x: number) => x.toFixed(2);
    const mib = (x: number) => (x / MiB).toFixed(0);
    const ratio = (x: number, y: number) => (y > 0 ? (x / y).toFixed(2) : 'n/a');
    const rows: string[][] = [
      ['start to /v2/ (ms)', ms(e.readyMs), ms(b.readyMs), ratio(b.readyMs, e.readyMs), '≤ 5000 ms', b.readyMs <= 5000 ? 'ok' : 'FAIL'],
      ['RSS at rest (MiB)', mib(e.rssAtRest), mib(b.rssAtRest), ratio(b.rssAtRest, e.rssAtRest), '≤ 250 MB', b.rssAtRest <= 250e6 ? 'ok' : 'FAIL'],
      ['of which anonymous (MiB; the rest is mapped files, mostly LevelDB tables)', mib(e.anonAtRest), mib(b.anonAtRest), ratio(b.anonAtRest, e.anonAtRest), '', ''],
      ['manifest by tag p50 (ms), the same 40 tags', ms(e.manifests.p50), ms(b.manifests.p50), ratio(b.manifests.p50, e.manifests.p50), '', ''],
      ['manifest by tag p99 (ms), the same 40 tags', ms(e.manifests.p99), ms(b.manifests.p99), ratio(b.manifests.p99, e.manifests.p99), '≤ 1.5×', b.manifests.p99 <= 1.5 * e.manifests.p99 ? 'ok' : 'FAIL'],
      ['manifest by tag req/s', e.manifests.rps.toFixed(0), b.manifests.rps.toFixed(0), ratio(b.manifests.rps, e.manifests.rps), '', ''],
      [`manifest by tag p50 (ms), working set (${e.g.tags / 5} / ${b.g.tags / 5} tags, each fetched once first)`, ms(e.manifestsWide.p50), ms(b.manifestsWide.p50), ratio(b.manifestsWide.p50, e.manifestsWide.p50), '', ''],
      [`manifest by tag p99 (ms), working set (${e.g.tags / 5} / ${b.g.tags / 5} tags, each fetched once first)`, ms(e.manifestsWide.p99), ms(b.manifestsWide.p99), ratio(b.manifestsWide.p99, e.manifestsWide.p99), '', ''],
      ['RSS after the working set (MiB)', mib(e.rssWide), mib(b.rssWide), ratio(b.rssWide, e.rssWide), '', ''],
      ['blob HEAD p50 (ms)', ms(e.blobHeads.p50), ms(b.blobHeads.p50), ratio(b.blobHeads.p50, e.blobHeads.p50), '', ''],
      [`blob HEAD p99 (ms), median of ${SAMPLES} runs (each: ${e.blobHeadRuns.map((r) => ms(r.p99)).join(', ')} / ${b.blobHeadRuns.map((r) => ms(r.p99)).join(', ')})`, ms(e.blobHeads.p99), ms(b.blobHeads.p99), ratio(b.blobHeads.p99, e.blobHeads.p99), '≤ 1.5×', b.blobHeads.p99 <= 1.5 * e.blobHeads.p99 ? 'ok' : 'FAIL'],
      ['blob HEAD req/s', e.blobHeads.rps.toFixed(0), b.blobHeads.rps.toFixed(0), ratio(b.blobHeads.rps, e.blobHeads.rps), '', ''],
    ];
    const passRows: string[][] = [
      ...samples.map((x, i) => [`GC pass, sample ${i + 1}`, `${x.gc.seconds.toFixed(1)} s, ${x.gc.value.removed.length} removed, ${x.gc.value.reachable} reachable`, ms(x.idle.p99), ms(x.gc.during.p99), ratio(x.gc.during.p99, x.idle.p99), `${mib(x.gc.peakRss)} (${mib(x.rssBeforeGc)} before)`, '']),
      [`**GC pass, median of ${SAMPLES}**`, '', ms(median(samples.map((x) => x.idle.p99))), ms(median(samples.map((x) => x.gc.during.p99))), `**${gcRatio.toFixed(2)}**`, mib(median(samples.map((x) => x.gc.peakRss))), gcRatio <= 2 ? 'ok' : 'FAIL'],
      ...samples.map((x, i) => [`eviction pass, sample ${i + 1}`, `${x.eviction.seconds.toFixed(1)} s, ${String(x.eviction.value.freed)} bytes freed`, ms(x.idleFresh.p99), ms(x.eviction.during.p99), ratio(x.eviction.during.p99, x.idleFresh.p99), mib(x.eviction.peakRss), '']),
      [`**eviction pass, median of ${SAMPLES}**`, '', ms(median(samples.map((x) => x.idleFresh.p99))), ms(median(samples.map((x) => x.eviction.during.p99))), `**${evictionRatio.toFixed(2)}**`, mib(median(samples.map((x) => x.eviction.peakRss))), evictionRatio <= 2 ? 'ok' : 'FAIL'],
    ];
    const toolRows: string[][] = [
      ['regmirror ls (through the admin socket)', ls.seconds.toFixed(1), `${ls.stdout.split('\n').length - 2} rows`],
      ['regmirror fsck (no digests, mirror stopped)', fsck.seconds.toFixed(1), `peak RSS ${mib(fsck.peakRss)} MiB`],
    ];
    const table = [
      `| measure | empty (${e.g.blobs} blobs, ${e.g.tags} tags) | big (${b.g.blobs} blobs, ${b.g.tags} tags, ${b.g.repos} repos) | big ÷ empty | goal | |`,
      '|---|---:|---:|---:|---|---|',
      ...rows.map((r) => `| ${r.join(' | ')} |`),
      '',
      '| pass (big cache, fresh process and working copy per sample, under manifest load) | what it did | idle p99 (ms) | p99 during (ms) | during ÷ idle (goal ≤ 2, on the median) | peak RSS (MiB) | |',
      '|---|---|---:|---:|---:|---:|---|',
      ...passRows.map((r) => `| ${r.join(' | ')} |`),
      '',
      '| command (big cache) | seconds | |',
      '|---|---:|---|',
      ...toolRows.map((r) => `| ${r.join(' | ')} |`),
    ].join('\n');
    const errors = [e.manifests, e.manifestsWide, e.blobHeads, b.manifests, b.manifestsWide, b.blobHeads, ...samples.flatMap((x) => [x.idleFresh, x.idle, x.gc.during, x.eviction.during])].map((l) => l.errors);
    console.log(`\n${table}\n\nerrors (non-2xx, timeouts) per run: ${errors.join(', ')}\n`);
    const totalMinutes = (performance.now() - totalStart) / 60_000;
    if (!process.env.BENCH_SCALE_BLOBS) {
      await writeFile(
        new URL('RESULTS-scale.md', import.meta.url),
        [
          '# regmirror at scale: a cache of a million blobs',
          '',
          `Generated by \`npm run bench:scale\` at ${new Date().toISOString()} on Node ${process.version}, ${totalMinutes.toFixed(1)} min in all (cache generation, when not cached already: ${big.seconds.toFixed(0)} s). Issue 16, point 4.`,
          '',
          `The big cache: ${b.g.blobs} blobs (${mib(b.g.bytes)} MiB of small files), ${b.g.tags} tags in ${b.g.repos} repositories, generated by \`scripts/scale-generate.mjs\` (each tag its own manifest, config and a window of its repository's layers plus two of 1,000 shared base layers; 5% orphans older than any GC grace). "Empty" is the same shapes at 2,000 blobs. The mirror runs offline on a working copy; the load is ${RATE} requests/s over ${CONNECTIONS} connections (latency counted from when each request was due), ${SECONDS} s per latency run, manifests by tag (GET) first over the same 40 tags on both sides (the like-for-like row, after a 2 s warm-up over them), then over the whole working set (the tags of the most recently used fifth of the repositories, each fetched once first), blob HEADs in ${SAMPLES} runs, each over the blobs of its own 500 of those tags (so each run meets blobs not asked for before; p50, p99 and rate are the medians of the runs; RSS at rest is taken once the blob table is built). The passes run ${SAMPLES} times, each on a fresh working copy, in fresh processes under load over the working set: GC's idle is the ${SECONDS} s run just before it in the same process (after ${FRESH_SECONDS} s of load from start); eviction runs from start, and its idle is the first ${FRESH_SECONDS} s of a fresh mirror without a quota; the goal is judged on the median of the samples' ratios. Errors (non-2xx, timeouts) per run: ${errors.join(', ')}.`,
          '',
          table,
          '',
        ].join('\n'),
      );
    }
    expect(errors.slice(0, 6).every((n) => n === 0)).toBe(true);
  } finally {
    await rm(workRoot, { recursive: true, force: true });
  }
});
