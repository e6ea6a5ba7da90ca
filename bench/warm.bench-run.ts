// Issue 16, point 3: warm serving under load, measured as a user does from outside: wrk (C), 100 connections,
// 10 s, against regmirror and against nginx with one worker and with `auto` (one per core), in one run.
// Quicker than `npm run bench` (no cold path, no distribution): `npm run bench:warm`. Output: a table on stdout
// and bench/results-warm.json. BENCH_WARM_LOG=info runs regmirror at its default log level (one access log line
// per request; the full bench runs it at warn); BENCH_WARM_WORKERS (default 1,auto) lists the `http.workers`
// values compared (auto: one per core, the same count as "nginx auto"). CPU and RSS are summed over each target's
// process tree (regmirror's primary and workers, nginx's master and workers).
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { Agent } from 'undici';
import { expect, test } from 'vitest';
import { pull } from '../test/fixtures/puller.js';
import { REPO, TAG, startUpstream } from './lib/fixture.js';
import { sampled, streamOnce, wrkLoad, type LoadResult } from './lib/measure.js';
import { startNginx, startRegmirror, type LogSink, type Target } from './lib/targets.js';

const SMOKE = process.env.BENCH_SMOKE === '1';
const LOAD = { connections: 100, durationSec: SMOKE ? 2 : 10 };
const MANIFEST_ACCEPT = 'application/vnd.docker.distribution.manifest.v2+json';
const LOG_LEVEL = process.env.BENCH_WARM_LOG ?? 'warn';
/** BENCH_WARM_LOGSINK=slow-pipe: regmirror's stdout is a pipe read at 4 MB/s, as a log shipper might. */
const LOG_SINK = (process.env.BENCH_WARM_LOGSINK ?? 'null') as LogSink;
const WORKERS = (process.env.BENCH_WARM_WORKERS ?? '1,auto').split(',');
/** BENCH_WARM_NGINX=0: regmirror only (profiling runs: BENCH_PROF=1 writes a CPU profile per process). */
const NGINX = process.env.BENCH_WARM_NGINX !== '0';
/** BENCH_WARM_LOADS=manifest or blob: one load only, so a profile holds one kind of request. */
const LOADS = new Set((process.env.BENCH_WARM_LOADS ?? 'manifest,blob').split(','));
/** BENCH_WARM_PROTOTYPE=2: also the measurement-only cluster prototype with 2 processes (see its file). */
const PROTOTYPE = Number(process.env.BENCH_WARM_PROTOTYPE ?? 0);
/** BENCH_WARM_BASELINE=<dir>: also run that build's dist/ (e.g. a copy made before a change), in the same run. */
const BASELINE = process.env.BENCH_WARM_BASELINE;
/** BENCH_WARM_NODE_FLAGS="--flag …": node flags for regmirror (not the baseline), to compare a V8 setting. */
const NODE_FLAGS = (process.env.BENCH_WARM_NODE_FLAGS ?? '').split(' ').filter(Boolean);
/** BENCH_WARM_BIG=1: only the memory goal: 32 clients download a 1 GiB blob at once; peak RSS (process tree). */
const BIG = process.env.BENCH_WARM_BIG === '1';
const BIG_CLIENTS = 32;
const NONE: LoadResult = { reqPerSec: Number.NaN, total: 0, p99Ms: Number.NaN, bytes: 0, errors: 0 };

interface Figures {
  target: string;
  /** The machine is shared: the 1-minute load average after the run says how quiet it was. */
  loadAverage: number;
  manifestDigest: LoadResult;
  manifestCpuUsPerReq: number;
  blob: LoadResult;
  blobCpuUsPerReq: number;
  peakRssMiB: number;
}

/** BENCH_WARM_PERF=1: `perf record -g` on the target for the middle of each load (kernel and native frames). */
async function perfRecord(pid: number, name: string): Promise<void> {
  if (process.env.BENCH_WARM_PERF !== '1') return;
  const dir = new URL('./profiles/', import.meta.url).pathname;
  await mkdir(dir, { recursive: true });
  const child = spawn('perf', ['record', '-g', '-p', String(pid), '-o', `${dir}perf-${name}-${pid}.data`, '--', 'sleep', String(Math.max(1, LOAD.durationSec - 4))], { stdio: 'ignore' });
  child.once('error', () => undefined);
}

async function measure(label: string, target: Target, urls: { manifest: string; blob: string }): Promise<Figures> {
  // CPU per request as well as req/s: on a shared machine the rate moves with the neighbours, the cost less so.
  const manifest = await sampled(target.pid, async () => {
    if (!LOADS.has('manifest')) return NONE;
    setTimeout(() => void perfRecord(target.pid, 'manifest'), 2_000);
    return wrkLoad(urls.manifest, { ...LOAD, headers: { accept: MANIFEST_ACCEPT } });
  });
  const blob = await sampled(target.pid, async () => {
    if (!LOADS.has('blob')) return NONE;
    setTimeout(() => void perfRecord(target.pid, 'blob'), 2_000);
    return wrkLoad(urls.blob, LOAD);
  });
  return {
    target: label,
    loadAverage: loadavg()[0] ?? Number.NaN,
    manifestDigest: manifest.value,
    manifestCpuUsPerReq: (manifest.usage.cpuSeconds * 1e6) / manifest.value.total,
    blob: blob.value,
    blobCpuUsPerReq: (blob.usage.cpuSeconds * 1e6) / blob.value.total,
    peakRssMiB: Math.max(manifest.usage.peakRssBytes, blob.usage.peakRssBytes) / 2 ** 20,
  };
}

test.runIf(BIG)('peak RSS serving 32 concurrent 1 GiB downloads: regmirror builds side by side', async () => {
  const up = await startUpstream({ smoke: true, big: true, auth: false });
  const big = up.bigBlob;
  if (!big) throw new Error('no big blob');
  const results: Array<{ target: string; peakRssMiB: number; MBps: number }> = [];
  try {
    up.front.setFault(undefined);
    up.front.setBandwidth(undefined);
    const builds: Array<[string, string | undefined]> = [['regmirror', undefined], ...(BASELINE === undefined ? [] : [['regmirror baseline', BASELINE] as [string, string]])];
    for (const [label, dist] of builds) {
      const target = await startRegmirror(up.front.url, { logLevel: LOG_LEVEL, ...(dist === undefined ? { nodeFlags: NODE_FLAGS } : { dist }) });
      try {
        const url = `${target.url}/v2/${REPO}/blobs/${big.digest}`;
        await streamOnce(url, 120_000);
        const many = await sampled(target.pid, () => Promise.all(Array.from({ length: BIG_CLIENTS }, () => streamOnce(url, 300_000))));
        const bytes = many.value.reduce((sum, r) => sum + r.bytes, 0);
        const ms = Math.max(...many.value.map((r) => r.ms));
        results.push({ target: label, peakRssMiB: many.usage.peakRssBytes / 2 ** 20, MBps: bytes / 1e6 / (ms / 1000) });
        console.log(JSON.stringify(results.at(-1)));
      } finally {
        await target.stop();
      }
    }
  } finally {
    await up.close();
  }
  expect(results.length).toBeGreaterThan(0);
});

test.skipIf(BIG)('warm serving under wrk: regmirror vs nginx (1 worker, auto)', async () => {
  const up = await startUpstream({ smoke: true, big: false, auth: false });
  const paths = { manifest: `/v2/${REPO}/manifests/${up.image.top.digest}`, blob: `/v2/${REPO}/blobs/${up.smallBlob.digest}` };
  const results: Figures[] = [];
  try {
    up.front.setFault(undefined);
    const starts: Array<[string, () => Promise<Target>]> = [
      ...WORKERS.map((w): [string, () => Promise<Target>] => [`regmirror workers=${w} log=${LOG_LEVEL}>${LOG_SINK}${NODE_FLAGS.length ? ` ${NODE_FLAGS.join(' ')}` : ''}`, () => startRegmirror(up.front.url, { logLevel: LOG_LEVEL, workers: w, logSink: LOG_SINK, nodeFlags: NODE_FLAGS })]),
      ...(PROTOTYPE > 1
        ? [[`regmirror prototype ${PROTOTYPE} processes log=${LOG_LEVEL}>${LOG_SINK}`, () => startRegmirror(up.front.url, { logLevel: LOG_LEVEL, logSink: LOG_SINK, prototypeProcesses: PROTOTYPE })] as [string, () => Promise<Target>]]
        : []),
      ...(BASELINE === undefined
        ? []
        : [[`regmirror baseline log=${LOG_LEVEL}>${LOG_SINK}`, () => startRegmirror(up.front.url, { logLevel: LOG_LEVEL, logSink: LOG_SINK, dist: BASELINE })] as [string, () => Promise<Target>]]),
      ['nginx 1 worker', () => startNginx({ repo: REPO, tag: TAG, image: up.image, extraBlobs: [] }, 1)],
      ['nginx auto', () => startNginx({ repo: REPO, tag: TAG, image: up.image, extraBlobs: [] }, 'auto')],
    ];
    for (const [label, start] of NGINX ? starts : starts.filter(([l]) => l.startsWith('regmirror'))) {
      const target = await start();
      try {
        // New connections each time: the prototype's processes and http.workers (round robin by connection) each
        // warm their own copy (a worker learns a digest from the primary's first answer for it).
        const warmRounds = label.includes('prototype') ? 4 * PROTOTYPE : label.includes('workers=1 ') ? 1 : 8;
        for (let i = 0; i < warmRounds; i++) {
          await pull(target.url, REPO, TAG, { dispatcher: new Agent() });
          await streamOnce(`${target.url}${paths.blob}`, 30_000);
        }
        const f = await measure(label, target, { manifest: `${target.url}${paths.manifest}`, blob: `${target.url}${paths.blob}` });
        results.push(f);
        console.log(JSON.stringify(f));
      } finally {
        await target.stop();
      }
    }
  } finally {
    await up.close();
  }
  const by = (label: string) => results.find((r) => r.target === label);
  const one = by('nginx 1 worker');
  const auto = by('nginx auto');
  const lines = ['target | manifest by digest req/s | p99 ms | CPU µs/req | ÷ nginx 1 | ÷ nginx auto | 1 MiB blob req/s | p99 ms | CPU µs/req | ÷ nginx 1 | ÷ nginx auto | errors | peak RSS MiB | load avg'];
  for (const r of results) {
    const ratio = (a: number, b: number | undefined) => (b ? (a / b).toFixed(2) : '—');
    lines.push(
      [
        r.target,
        r.manifestDigest.reqPerSec.toFixed(0),
        r.manifestDigest.p99Ms.toFixed(1),
        r.manifestCpuUsPerReq.toFixed(1),
        ratio(r.manifestDigest.reqPerSec, one?.manifestDigest.reqPerSec),
        ratio(r.manifestDigest.reqPerSec, auto?.manifestDigest.reqPerSec),
        r.blob.reqPerSec.toFixed(0),
        r.blob.p99Ms.toFixed(1),
        r.blobCpuUsPerReq.toFixed(0),
        ratio(r.blob.reqPerSec, one?.blob.reqPerSec),
        ratio(r.blob.reqPerSec, auto?.blob.reqPerSec),
        String(r.manifestDigest.errors + r.blob.errors),
        r.peakRssMiB.toFixed(0),
        r.loadAverage.toFixed(1),
      ].join(' | '),
    );
  }
  console.log(`\n${lines.join('\n')}\n`);
  await writeFile(new URL(`./results-warm${SMOKE ? '-smoke' : ''}.json`, import.meta.url), `${JSON.stringify({ timestamp: new Date().toISOString(), load: LOAD, logLevel: LOG_LEVEL, results }, null, 2)}\n`);
  for (const r of results) expect(r.manifestDigest.errors + r.blob.errors, r.target).toBe(0);
});
