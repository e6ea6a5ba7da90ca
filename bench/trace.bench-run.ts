// Issue 16, point 1: where the time of one cold pull goes. Scenario 1 of the full bench alone (a fresh regmirror
// that has pulled one other image, then one docker-like pull of library/bench:1), against the same pull straight
// from the front, BENCH_RUNS times; prints cold ÷ direct (median) and the timeline of the median run: every
// client request (sent, headers, end) as the puller saw it and every upstream request (arrived, answered, end) as
// the front saw it, one clock, relative to the client's first request. The mirror itself carries no tracing code:
// both ends are observed from outside, so its hot path pays nothing. BENCH_AUTH=1: the front speaks Docker Hub's
// token protocol to the mirror (the direct pull never needs a token, as in the full bench).
import { test } from 'vitest';
import { Agent } from 'undici';
import { pull, type ClientEvent } from '../test/fixtures/puller.js';
import type { FrontRequest, HubFront } from '../test/fixtures/hub-front.js';
import { REPO, TAG, WARMUP_REPO, startUpstream } from './lib/fixture.js';
import { median } from './lib/measure.js';
import { startRegmirror } from './lib/targets.js';

const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 5));
const AUTH = process.env.BENCH_AUTH === '1';
/**
 * BENCH_BIG=1: the upstream also holds the full bench's 1 GiB blob (pushed at setup, so its pages are still being
 * written back while the pulls run, as in `npm run bench`): what made the full run's scenario 1 slower than this one.
 */
const BIG = process.env.BENCH_BIG === '1';
/**
 * BENCH_TRACE_BASELINE=<dir>: another checkout, built (e.g. `git archive <commit> | tar -x -C <dir>`, then
 * `npx tsc -p tsconfig.build.json` there), pulled through in every run too: before and after side by side.
 */
const BASELINE = process.env.BENCH_TRACE_BASELINE;

interface Row {
  side: 'client' | 'upstream';
  what: string;
  start: number;
  first: number | undefined;
  end: number | undefined;
}

interface Traced {
  ms: number;
  rows: Row[];
}

function short(path: string): string {
  return path.replace(`/v2/${REPO}/`, '').replace(/(sha256:[a-f0-9]{12})[a-f0-9]+/, '$1');
}

function upstreamRows(requests: readonly FrontRequest[]): Row[] {
  return requests.map((r) => ({
    side: 'upstream',
    what: `${r.method} ${short(r.path)} → ${r.status}${r.bytes > 1e5 ? ` (${(r.bytes / 1e6).toFixed(1)} MB)` : ''}`,
    start: r.arrivedAt,
    first: r.answeredAt,
    end: r.endedAt,
  }));
}

/** One pull through `url`, traced; the front's records are taken once it is idle, so every end is known. */
async function tracedPull(url: string, front: HubFront): Promise<Traced> {
  const events: ClientEvent[] = [];
  const agent = new Agent();
  try {
    const started = performance.now();
    await pull(url, REPO, TAG, { dispatcher: agent, trace: (e) => events.push(e) });
    const ms = performance.now() - started;
    await front.idle(30_000);
    const client: Row[] = events.map((e) => ({ side: 'client', what: e.what, start: e.startedAt, first: e.headersAt, end: e.endedAt }));
    const rows = [...client, ...upstreamRows(front.requests)]
      .map((r) => ({ ...r, start: r.start - started, first: r.first === undefined ? undefined : r.first - started, end: r.end === undefined ? undefined : r.end - started }))
      .sort((a, b) => a.start - b.start);
    return { ms, rows };
  } finally {
    await agent.close();
  }
}

function timeline(title: string, t: Traced): string {
  const n = (v: number | undefined) => (v === undefined ? '—' : v.toFixed(0)).padStart(6);
  const width = Math.max(...t.rows.map((r) => r.what.length));
  const lines = t.rows.map((r) => `${r.side.padEnd(8)}  ${r.what.padEnd(width)}  ${n(r.start)}  ${n(r.first)}  ${n(r.end)}`);
  return [`${title}: ${t.ms.toFixed(0)} ms`, `${'side'.padEnd(8)}  ${'request'.padEnd(width)}  ${'start'.padStart(6)}  ${'first'.padStart(6)}  ${'end'.padStart(6)}`, ...lines].join('\n');
}

/** A fresh regmirror that has pulled one other image (a warm process, a cold cache), then the traced pull. */
async function mirrorPull(up: Awaited<ReturnType<typeof startUpstream>>, o: { config?: string; main?: string } = {}): Promise<Traced> {
  const target = await startRegmirror(up.front.url, o);
  try {
    await pull(target.url, WARMUP_REPO, TAG);
    await up.front.idle(30_000);
    up.resetFront();
    return await tracedPull(target.url, up.front);
  } finally {
    await target.stop();
  }
}

test('cold pull traced: direct vs through regmirror', async () => {
  const up = await startUpstream({ smoke: false, big: BIG, auth: AUTH });
  const runs: Array<{ direct: Traced; mirror: Traced; ratio: number; prefetchRatio: number; baseline?: Traced; baselineRatio?: number }> = [];
  try {
    for (let run = 0; run < RUNS; run += 1) {
      up.resetFront();
      const direct = await tracedPull(up.directFront.url, up.directFront);
      const mirror = await mirrorPull(up);
      // The same with blob prefetch on (off by default), so each run says whether prefetch pays.
      const prefetching = await mirrorPull(up, { config: 'cache:\n  prefetchBlobs: 4\n' });
      const baseline = BASELINE === undefined ? undefined : await mirrorPull(up, { main: `${BASELINE}/dist/src/main.js` });
      runs.push({
        direct,
        mirror,
        ratio: mirror.ms / direct.ms,
        prefetchRatio: prefetching.ms / direct.ms,
        ...(baseline ? { baseline, baselineRatio: baseline.ms / direct.ms } : {}),
      });
      if (baseline) console.log(`run ${run + 1}/${RUNS}: baseline (${BASELINE}) ${baseline.ms.toFixed(0)} ms (ratio ${(baseline.ms / direct.ms).toFixed(3)})`);
      console.log(
        `run ${run + 1}/${RUNS}: direct ${direct.ms.toFixed(0)} ms, regmirror ${mirror.ms.toFixed(0)} ms (ratio ${(mirror.ms / direct.ms).toFixed(3)}), ` +
          `with prefetch ${prefetching.ms.toFixed(0)} ms (ratio ${(prefetching.ms / direct.ms).toFixed(3)})`,
      );
    }
  } finally {
    await up.close();
  }
  const ratios = runs.map((r) => r.ratio);
  const mid = median(ratios);
  const shown = runs.reduce((best, r) => (Math.abs(r.ratio - mid) < Math.abs(best.ratio - mid) ? r : best));
  const list = (values: number[]) => values.map((r) => r.toFixed(2)).join(', ');
  console.log(
    [
      '',
      `cold ÷ direct${AUTH ? ' (front with token auth)' : ''}: median ${mid.toFixed(3)} of ${RUNS} runs [${list(ratios)}]; ` +
        `direct median ${median(runs.map((r) => r.direct.ms)).toFixed(0)} ms, regmirror median ${median(runs.map((r) => r.mirror.ms)).toFixed(0)} ms`,
      `with blob prefetch (cache.prefetchBlobs: 4): median ${median(runs.map((r) => r.prefetchRatio)).toFixed(3)} [${list(runs.map((r) => r.prefetchRatio))}]`,
      ...(BASELINE === undefined
        ? []
        : [`baseline ${BASELINE}: median ${median(runs.map((r) => r.baselineRatio ?? Number.NaN)).toFixed(3)} [${list(runs.map((r) => r.baselineRatio ?? Number.NaN))}]`]),
      'times in ms from the client\'s first request; client: sent / headers / body read; upstream: arrived at the front / status sent / closed',
      '',
      timeline('direct', shown.direct),
      '',
      timeline('regmirror', shown.mirror),
      '',
      ...(shown.baseline ? [timeline(`baseline ${BASELINE}`, shown.baseline), ''] : []),
    ].join('\n'),
  );
});
