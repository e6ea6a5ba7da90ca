// Issue 5, first cut: regmirror vs distribution 2.8 (proxy mode) vs nginx (static files) in one run.
// Cold scenarios go through the Hub-like front (100 MB/s per stream, +20 ms per request); warm scenarios read
// each target's own copy. Every figure is the median of BENCH_RUNS runs. Output: table on stdout,
// bench/results.json, bench/RESULTS.md. BENCH_SMOKE=1: one run, one 1 MiB layer, 1 s loads, no 1 GiB blob.
import { expect, test } from 'vitest';
import { Agent } from 'undici';
import { pull } from '../test/fixtures/puller.js';
import { FRONT, REPO, TAG, WARMUP_REPO, settleDisk, startUpstream, type Upstream } from './lib/fixture.js';
import { load, loadBodies, median, sampled, streamOnce, timed, treeCpuSeconds, wrkLoad } from './lib/measure.js';
import { buildReport, table, writeReport, type Row } from './lib/report.js';
import { startDistributionProxy, startNginx, startRegmirror, type Target, type TargetName } from './lib/targets.js';

const SMOKE = process.env.BENCH_SMOKE === '1';
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? (SMOKE ? 1 : 3)));
/** BENCH_AUTH=1: the front speaks Docker Hub's token protocol (distribution then caches the challenge). */
const AUTH = process.env.BENCH_AUTH === '1';
const BIG = process.env.BENCH_BIG === undefined ? !SMOKE : process.env.BENCH_BIG === '1';
/**
 * BENCH_ONLY=cold1: scenario 1 alone, as the full run does it (the same upstream, 1 GiB blob included, a direct
 * pull at the start of each run), for iterating on it; with BENCH_TRACE_BASELINE=<built checkout> that build is
 * pulled through in every run too. Prints the ratios; writes no report.
 */
const ONLY_COLD1 = process.env.BENCH_ONLY === 'cold1';
const BASELINE = process.env.BENCH_TRACE_BASELINE;
const LOAD = SMOKE ? { connections: 10, durationSec: 1 } : { connections: 100, durationSec: 10 };
const CONCURRENCY = [8, 32] as const;
const WARM_CLIENTS = 32;
const BIG_TIMEOUT_MS = 120_000;
const BIG_CLIENTS = 32;
const BIG_MANY_TIMEOUT_MS = 300_000;
const MANIFEST_ACCEPT = 'application/vnd.docker.distribution.manifest.v2+json';
const TARGETS: readonly TargetName[] = ['regmirror', 'regmirror-auto', 'distribution', 'nginx', 'nginx-auto'];
/** Static file servers: no cold path, only the warm scenarios. */
const STATIC = (name: TargetName): boolean => name === 'nginx' || name === 'nginx-auto';
/** regmirror with `http.workers: auto` (as many workers as nginx auto): the warm scenarios only, cold ones are the primary's. */
const WARM_ONLY = (name: TargetName): boolean => STATIC(name) || name === 'regmirror-auto';
const MB = 1e6;
const GB = 1e9;

type Figures = Record<string, number>;

/** `clients` docker-like pulls at once, each on its own connection pool; resolves with the wall time. */
async function pullMany(url: string, clients: number): Promise<number> {
  const agents = Array.from({ length: clients }, () => new Agent());
  try {
    const { ms } = await timed(() => Promise.all(agents.map((dispatcher) => pull(url, REPO, TAG, { dispatcher }))));
    return ms;
  } finally {
    await Promise.all(agents.map((a) => a.close()));
  }
}

async function frontBlobBytes(up: Upstream): Promise<number> {
  await up.front.idle(30_000);
  return up.front.requests.filter((r) => r.kind === 'blob' || r.kind === 'cdn').reduce((sum, r) => sum + r.bytes, 0);
}

/** A fresh mirror that has served one other image: what a long-running mirror meets when an image is new. */
function warmProcess(start: () => Promise<Target>): () => Promise<Target> {
  return async () => {
    const target = await start();
    await pull(target.url, WARMUP_REPO, TAG);
    await settleDisk();
    return target;
  };
}

function starter(name: TargetName, up: Upstream): () => Promise<Target> {
  if (name === 'regmirror') return warmProcess(() => startRegmirror(up.front.url));
  if (name === 'regmirror-auto') return warmProcess(() => startRegmirror(up.front.url, { workers: 'auto' }));
  if (name === 'distribution') return warmProcess(() => startDistributionProxy(up.front.url));
  const extraBlobs = up.bigBlob ? [[up.bigBlob.digest, up.bigBlob.bytes] as const] : [];
  return () => startNginx({ repo: REPO, tag: TAG, image: up.image, extraBlobs }, name === 'nginx' ? 1 : 'auto');
}

/** Scenarios 1–2: each on a freshly started (empty) mirror. Leaves the last one running, filled, for 3–6. */
async function coldScenarios(start: () => Promise<Target>, up: Upstream, f: Figures): Promise<Target> {
  let target = await start();
  up.resetFront();
  f.coldPullMs = (await timed(() => pull(target.url, REPO, TAG))).ms;
  f.cold1FrontRatio = (await frontBlobBytes(up)) / up.imageBlobBytes;
  for (const n of CONCURRENCY) {
    await target.stop();
    target = await start();
    up.resetFront();
    f[`cold${n}Ms`] = await pullMany(target.url, n);
    f[`cold${n}FrontRatio`] = (await frontBlobBytes(up)) / up.imageBlobBytes;
  }
  return target;
}

/** The same warm-up for every target: one pull, one small-blob GET, one big-blob GET with the cap lifted. */
async function warmUp(target: Target, up: Upstream): Promise<void> {
  await pullMany(target.url, 1);
  await streamOnce(`${target.url}/v2/${REPO}/blobs/${up.smallBlob.digest}`, 30_000);
  if (up.bigBlob) {
    up.front.setBandwidth(undefined);
    await streamOnce(`${target.url}/v2/${REPO}/blobs/${up.bigBlob.digest}`, BIG_TIMEOUT_MS);
    up.resetFront();
  }
  await up.front.idle(30_000);
}

/** The memory goal: BIG_CLIENTS clients download the 1 GiB blob at once; peak RSS and aggregate MB/s. */
async function bigDownloads(target: Target, up: Upstream, f: Figures): Promise<void> {
  if (!up.bigBlob) return;
  const url = `${target.url}/v2/${REPO}/blobs/${up.bigBlob.digest}`;
  const many = await sampled(target.pid, () => timed(() => Promise.all(Array.from({ length: BIG_CLIENTS }, () => streamOnce(url, BIG_MANY_TIMEOUT_MS)))));
  const bytes = many.value.value.reduce((sum, r) => sum + r.bytes, 0);
  f.big32MBps = bytes / MB / (many.value.ms / 1000);
  f.big32PeakRssMiB = many.usage.peakRssBytes / 2 ** 20;
  f.big32CpuPerGB = many.usage.cpuSeconds / (bytes / GB);
}

/** Scenarios 3–6 on a filled target; the 32 × 1 GiB memory check in the first run only (it moves 34 GB). */
async function warmScenarios(target: Target, up: Upstream, f: Figures, run: number): Promise<void> {
  if (run === 0) await bigDownloads(target, up, f);
  const warm = await sampled(target.pid, () => pullMany(target.url, WARM_CLIENTS));
  const warmBytes = WARM_CLIENTS * up.imageBlobBytes;
  f.warmPullMBps = warmBytes / MB / (warm.value / 1000);
  f.warmPeakRssMiB = warm.usage.peakRssBytes / 2 ** 20;
  f.warmCpuPerGB = warm.usage.cpuSeconds / (warmBytes / GB);

  up.resetFront();
  const manifest = await load(`${target.url}/v2/${REPO}/manifests/${TAG}`, { ...LOAD, headers: { accept: MANIFEST_ACCEPT } });
  await up.front.idle(30_000);
  f.manifestFrontPer1k = (up.front.requests.length / Math.max(1, manifest.total)) * 1000;
  f.manifestRps = manifest.reqPerSec;
  f.manifestP99 = manifest.p99Ms;
  f.manifestErrors = manifest.errors;
  const byDigest = await load(`${target.url}/v2/${REPO}/manifests/${up.image.top.digest}`, { ...LOAD, headers: { accept: MANIFEST_ACCEPT } });
  f.manifestDigestRps = byDigest.reqPerSec;
  f.manifestDigestP99 = byDigest.p99Ms;
  f.manifestErrors += byDigest.errors;

  const blobs = await sampled(target.pid, async () => {
    const small = await loadBodies(`${target.url}/v2/${REPO}/blobs/${up.smallBlob.digest}`, LOAD);
    const big = up.bigBlob ? await streamOnce(`${target.url}/v2/${REPO}/blobs/${up.bigBlob.digest}`, BIG_TIMEOUT_MS) : undefined;
    return { small, big };
  });
  f.blobRps = blobs.value.small.reqPerSec;
  f.blobP99 = blobs.value.small.p99Ms;
  f.blobErrors = blobs.value.small.errors;
  if (blobs.value.big) f.bigMBps = blobs.value.big.bytes / MB / (blobs.value.big.ms / 1000);
  const blobBytes = blobs.value.small.bytes + (blobs.value.big?.bytes ?? 0);
  f.blobPeakRssMiB = blobs.usage.peakRssBytes / 2 ** 20;
  f.blobCpuPerGB = blobs.usage.cpuSeconds / (blobBytes / GB);

  // The same two loads from wrk (C): what a user measures from outside (issue 16, point 3).
  const wrkDigest = await wrkLoad(`${target.url}/v2/${REPO}/manifests/${up.image.top.digest}`, { ...LOAD, headers: { accept: MANIFEST_ACCEPT } });
  f.wrkManifestDigestRps = wrkDigest.reqPerSec;
  f.wrkManifestDigestP99 = wrkDigest.p99Ms;
  const wrkBlob = await wrkLoad(`${target.url}/v2/${REPO}/blobs/${up.smallBlob.digest}`, LOAD);
  f.wrkBlobRps = wrkBlob.reqPerSec;
  f.wrkBlobP99 = wrkBlob.p99Ms;
  f.manifestErrors += wrkDigest.errors;
  f.blobErrors += wrkBlob.errors;
}

async function runTarget(name: TargetName, up: Upstream, run: number): Promise<Figures> {
  const f: Figures = {};
  const start = starter(name, up);
  // nginx serves local files: it has no cold path, only the warm scenarios.
  const target = WARM_ONLY(name) ? await start() : await coldScenarios(start, up, f);
  try {
    await warmUp(target, up);
    await warmScenarios(target, up, f, run);
  } finally {
    await target.stop();
  }
  return f;
}

const ROWS: ReadonlyArray<Omit<Row, 'values'> & { key: string }> = [
  { key: 'coldPullMs', metric: '1. cold pull, 1 client', unit: 'ms', better: 'lower' },
  { key: 'coldVsDirect', metric: '1. cold pull ÷ direct pull from front', unit: 'x', better: 'lower', note: 'ideal 1.0; a warm process (it pulled another image first), a cold cache', goal: { of: 'regmirror', max: 1.1 } },
  { key: 'cold1FrontRatio', metric: '1. front blob bytes ÷ image, 1 client', unit: 'x', better: 'lower', note: 'ideal 1.0' },
  { key: 'cold8Ms', metric: '2. cold pull, 8 clients', unit: 'ms', better: 'lower' },
  { key: 'cold8FrontRatio', metric: '2. front blob bytes ÷ image, 8 clients', unit: 'x', better: 'lower', note: 'ideal 1.0 (one upstream download per blob)', goal: { of: 'regmirror', max: 1 } },
  { key: 'cold32Ms', metric: '2. cold pull, 32 clients', unit: 'ms', better: 'lower' },
  { key: 'cold32FrontRatio', metric: '2. front blob bytes ÷ image, 32 clients', unit: 'x', better: 'lower', goal: { of: 'regmirror', max: 1 } },
  { key: 'warmPullMBps', metric: '3. warm pull, 32 clients, aggregate', unit: 'MB/s', better: 'higher' },
  { key: 'manifestRps', metric: '4. warm manifest by tag', unit: 'req/s', better: 'higher', goal: { of: 'rm/dist', min: 10, also: { of: 'rm/nginx', min: 0.25 } } },
  { key: 'manifestP99', metric: '4. warm manifest by tag p99', unit: 'ms', better: 'lower' },
  { key: 'manifestDigestRps', metric: '4. warm manifest by digest', unit: 'req/s', better: 'higher', goal: { of: 'rm/dist', min: 10, also: { of: 'rm/nginx', min: 0.25 } } },
  { key: 'manifestDigestP99', metric: '4. warm manifest by digest p99', unit: 'ms', better: 'lower' },
  { key: 'manifestFrontPer1k', metric: '4. front requests per 1000 manifest GETs', unit: 'count', better: 'lower', note: 'upstream round trips while the tag is fresh (TTL 1h for regmirror)' },
  { key: 'blobRps', metric: '5. warm 1 MiB blob GET', unit: 'req/s', better: 'higher', note: 'undici load loop (autocannon tops out near 70 MB/s)', goal: { of: 'rm auto/nginx auto', min: 0.7 } },
  { key: 'blobP99', metric: '5. warm 1 MiB blob GET p99', unit: 'ms', better: 'lower' },
  { key: 'wrkManifestDigestRps', metric: '4. warm manifest by digest, wrk', unit: 'req/s', better: 'higher', note: 'wrk -t2 -c100 -d10s: the issue\'s tool', goal: { of: 'rm/nginx', min: 0.5, also: { of: 'rm auto/nginx auto', min: 0.5 } } },
  { key: 'wrkManifestDigestP99', metric: '4. warm manifest by digest p99, wrk', unit: 'ms', better: 'lower', goal: { of: 'regmirror', max: 50 } },
  { key: 'wrkBlobRps', metric: '5. warm 1 MiB blob GET, wrk', unit: 'req/s', better: 'higher', goal: { of: 'rm auto/nginx auto', min: 0.7 } },
  { key: 'wrkBlobP99', metric: '5. warm 1 MiB blob GET p99, wrk', unit: 'ms', better: 'lower' },
  { key: 'bigMBps', metric: '5. 1 GiB blob, one stream', unit: 'MB/s', better: 'higher', goal: { of: 'rm/dist', min: 1 } },
  { key: 'big32MBps', metric: '6. 32 concurrent 1 GiB downloads, aggregate', unit: 'MB/s', better: 'higher' },
  { key: 'big32PeakRssMiB', metric: '6. peak RSS, 32 concurrent 1 GiB downloads', unit: 'MiB', better: 'lower', note: 'goal is 150 MB = 143 MiB', goal: { of: 'regmirror', max: 150e6 / 2 ** 20 } },
  { key: 'big32CpuPerGB', metric: '6. CPU per GB served, 32 × 1 GiB', unit: 's/GB', better: 'lower' },
  { key: 'warmPeakRssMiB', metric: '6. peak RSS during 3', unit: 'MiB', better: 'lower' },
  { key: 'warmCpuPerGB', metric: '6. CPU per GB served during 3', unit: 's/GB', better: 'lower' },
  { key: 'blobPeakRssMiB', metric: '6. peak RSS during 5', unit: 'MiB', better: 'lower' },
  { key: 'blobCpuPerGB', metric: '6. CPU per GB served during 5', unit: 's/GB', better: 'lower' },
  { key: 'manifestErrors', metric: 'errors/non-2xx during 4', unit: 'count', better: 'lower', goal: { of: 'regmirror', max: 0 } },
  { key: 'blobErrors', metric: 'errors/non-2xx during 5', unit: 'count', better: 'lower', goal: { of: 'regmirror', max: 0 } },
];

async function cold1Only(up: Upstream): Promise<void> {
  const builds: Array<[string, string | undefined]> = [['regmirror', undefined], ...(BASELINE === undefined ? [] : [['baseline', `${BASELINE}/dist/src/main.js`] as [string, string]])];
  const ratios = new Map<string, number[]>(builds.map(([name]) => [name, []]));
  const cpu = new Map<string, number[]>(builds.map(([name]) => [name, []]));
  for (let run = 0; run < RUNS; run += 1) {
    up.resetFront();
    await settleDisk();
    const direct = await pullMany(up.directFront.url, 1);
    const line: string[] = [`direct ${direct.toFixed(0)} ms`];
    // Odd runs take the builds the other way round: neither always follows the direct pull.
    for (const [name, main] of run % 2 === 0 ? builds : [...builds].reverse()) {
      const target = await warmProcess(() => startRegmirror(up.front.url, main === undefined ? {} : { main }))();
      try {
        up.resetFront();
        const cpuBefore = await treeCpuSeconds(target.pid);
        const { ms } = await timed(() => pull(target.url, REPO, TAG));
        await up.front.idle(30_000);
        await new Promise((resolve) => setTimeout(resolve, 300)); // the commits after the last byte
        const cpuMs = ((await treeCpuSeconds(target.pid)) - cpuBefore) * 1000;
        ratios.get(name)?.push(ms / direct);
        cpu.get(name)?.push(cpuMs);
        line.push(`${name} ${ms.toFixed(0)} ms (${(ms / direct).toFixed(3)}, cpu ${cpuMs.toFixed(0)} ms)`);
      } finally {
        await target.stop();
      }
    }
    console.log(`run ${run + 1}/${RUNS}: ${line.join(', ')}`);
  }
  for (const [name, r] of ratios) {
    console.log(`cold1 ${name}: cold ÷ direct median ${median(r).toFixed(3)} of ${r.length} [${r.map((v) => v.toFixed(2)).join(', ')}]; mirror CPU median ${median(cpu.get(name) ?? []).toFixed(0)} ms`);
  }
}

test('regmirror vs distribution vs nginx', async () => {
  const up = await startUpstream({ smoke: SMOKE, big: BIG, auth: AUTH });
  if (ONLY_COLD1) {
    try {
      await cold1Only(up);
    } finally {
      await up.close();
    }
    return;
  }
  const perRun: Record<TargetName, Figures[]> = { regmirror: [], 'regmirror-auto': [], distribution: [], nginx: [], 'nginx-auto': [] };
  const direct: number[] = [];
  try {
    for (let run = 0; run < RUNS; run += 1) {
      up.resetFront();
      await settleDisk();
      direct.push(await pullMany(up.directFront.url, 1));
      for (const name of TARGETS) {
        const f = await runTarget(name, up, run);
        if (f.coldPullMs !== undefined) f.coldVsDirect = f.coldPullMs / (direct[run] as number);
        perRun[name].push(f);
        console.log(`run ${run + 1}/${RUNS} ${name}: ${JSON.stringify(f, (_, v: unknown) => (typeof v === 'number' ? Math.round(v * 100) / 100 : v))}`);
      }
    }
  } finally {
    await up.close();
  }
  const rows: Row[] = ROWS.map(({ key, ...row }) => ({
    ...row,
    values: Object.fromEntries(
      TARGETS.map((name) => [name, median(perRun[name].map((f) => f[key] ?? Number.NaN))]).filter(([, v]) => Number.isFinite(v)),
    ) as Row['values'],
  }));
  const report = buildReport(rows, {
    smoke: SMOKE,
    runs: RUNS,
    bigBlob: BIG,
    frontAuth: AUTH,
    imageBlobBytes: up.imageBlobBytes,
    layers: up.image.blobs.size - 1,
    front: FRONT,
    frontBandwidthIs: 'per stream (each response throttled on its own)',
    load: LOAD,
    loadTools: { manifest: 'autocannon', blob: 'undici loop (bench/lib/measure.ts loadBodies)', wrkRows: 'wrk -t2 (bench/lib/measure.ts wrkLoad)' },
    directPullMsMedian: median(direct),
    nginx: 'one process (master_process off), sendfile; no cold path, so cold rows are empty',
    nginxAuto: 'worker_processes auto (a master and one worker per core); RSS and CPU summed over its processes',
    regmirrorAuto: 'http.workers auto (a primary and one worker per core); warm scenarios only; RSS and CPU summed over its processes',
  });
  console.log(`\n${table(report)}\n`);
  // Smoke runs (CI) write beside the committed results, never over them.
  await writeReport(report, new URL('./', import.meta.url), `${AUTH ? '-auth' : ''}${SMOKE ? '-smoke' : ''}`);

  // What keeps the bench from rotting (CI runs the smoke): every scenario gave every target a figure, no
  // request failed, and regmirror fetched the image from upstream once.
  const needsBig = (key: string): boolean => key.startsWith('big');
  const coldOnly = (key: string): boolean => key.startsWith('cold');
  for (const name of TARGETS) {
    const expected = ROWS.map((r) => r.key).filter((k) => (BIG || !needsBig(k)) && (!WARM_ONLY(name) || !coldOnly(k)));
    const missing = expected.filter((k) => perRun[name].some((f, run) => !Number.isFinite(f[k]) && !(k.startsWith('big32') && run > 0)));
    expect(missing, `${name}: scenarios without a figure`).toEqual([]);
    expect(perRun[name].map((f) => (f.manifestErrors ?? 0) + (f.blobErrors ?? 0)), `${name}: failed requests`).toEqual(perRun[name].map(() => 0));
  }
  for (const f of perRun.regmirror) expect([f.cold1FrontRatio, f.cold8FrontRatio, f.cold32FrontRatio]).toEqual([1, 1, 1]);
});
