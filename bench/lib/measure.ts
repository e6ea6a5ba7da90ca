// Owns: how one figure is taken — process sampling from /proc (peak VmRSS, utime+stime), medians, the
// autocannon wrapper, and a single-stream GET timed end to end.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import autocannon from 'autocannon';
import { Agent, request } from 'undici';

const CLOCK_TICKS = 100;
const SAMPLE_MS = 100;

async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (1-based).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  return kb === undefined ? 0 : Number(kb) * 1024;
}

/** The process and its descendants (nginx's workers, regmirror's HTTP workers): what the target costs in all. */
async function tree(pid: number): Promise<number[]> {
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  const ids = children.split(' ').filter(Boolean).map(Number);
  return [pid, ...(await Promise.all(ids.map(tree))).flat()];
}

export async function treeCpuSeconds(pid: number): Promise<number> {
  const pids = await tree(pid);
  return (await Promise.all(pids.map((p) => cpuSeconds(p).catch(() => 0)))).reduce((a, b) => a + b, 0);
}

async function treeRssBytes(pid: number): Promise<number> {
  const pids = await tree(pid);
  return (await Promise.all(pids.map(rssBytes))).reduce((a, b) => a + b, 0);
}

export interface ProcUsage {
  peakRssBytes: number;
  cpuSeconds: number;
}

/**
 * Samples VmRSS every 100 ms while `work` runs; CPU is the utime+stime difference across it. Both are summed over
 * the process and its descendants (one process for every single-process target; children that exit during the
 * work are not counted).
 */
export async function sampled<T>(pid: number, work: () => Promise<T>): Promise<{ value: T; usage: ProcUsage }> {
  const cpuBefore = await treeCpuSeconds(pid);
  let peak = await treeRssBytes(pid);
  let running = true;
  const sampler = (async () => {
    while (running) {
      peak = Math.max(peak, await treeRssBytes(pid));
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
    }
  })();
  try {
    const value = await work();
    return { value, usage: { peakRssBytes: Math.max(peak, await treeRssBytes(pid)), cpuSeconds: (await treeCpuSeconds(pid)) - cpuBefore } };
  } finally {
    running = false;
    await sampler;
  }
}

export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const mid = Math.floor(finite.length / 2);
  return finite.length % 2 === 1 ? (finite[mid] as number) : ((finite[mid - 1] as number) + (finite[mid] as number)) / 2;
}

export async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work();
  return { value, ms: performance.now() - started };
}

export interface LoadResult {
  reqPerSec: number;
  total: number;
  p99Ms: number;
  bytes: number;
  errors: number;
}

export async function load(url: string, o: { connections: number; durationSec: number; headers?: Record<string, string> }): Promise<LoadResult> {
  const r = await autocannon({ url, connections: o.connections, duration: o.durationSec, ...(o.headers ? { headers: o.headers } : {}) });
  return { reqPerSec: r.requests.average, total: r.requests.total, p99Ms: r.latency.p99, bytes: r.throughput.total, errors: r.errors + r.timeouts + r.non2xx };
}

/**
 * Large-body load: `connections` loops, each GETting `url` back to back on its own connection for `durationSec`,
 * draining the body. autocannon parses bodies in JS and tops out near 70 MB/s on 1 MiB responses (every target
 * looked the same in smoke runs), so blob load uses undici (llhttp) instead.
 */
export async function loadBodies(url: string, o: { connections: number; durationSec: number }): Promise<LoadResult> {
  const agent = new Agent({ connections: o.connections, pipelining: 1 });
  const latencies: number[] = [];
  let bytes = 0;
  let errors = 0;
  const started = performance.now();
  const deadline = started + o.durationSec * 1000;
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        const res = await request(url, { dispatcher: agent, signal: AbortSignal.timeout(30_000) });
        for await (const chunk of res.body as AsyncIterable<Buffer>) bytes += chunk.length;
        if (res.statusCode !== 200) errors += 1;
      } catch {
        errors += 1;
      }
      latencies.push(performance.now() - t0);
    }
  };
  try {
    await Promise.all(Array.from({ length: o.connections }, loop));
  } finally {
    await agent.close();
  }
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? Number.NaN;
  return { reqPerSec: latencies.length / elapsed, total: latencies.length, p99Ms: p99, bytes, errors };
}

/** One client GETs `url` and drains it; returns bytes and wall ms. Bounded by `timeoutMs`. */
export async function streamOnce(url: string, timeoutMs: number): Promise<{ bytes: number; ms: number }> {
  const agent = new Agent({ bodyTimeout: timeoutMs, headersTimeout: timeoutMs });
  try {
    return await timed(async () => {
      const res = await request(url, { dispatcher: agent, signal: AbortSignal.timeout(timeoutMs) });
      if (res.statusCode !== 200) throw new Error(`GET ${url}: ${res.statusCode} ${await res.body.text()}`);
      let bytes = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) bytes += chunk.length;
      return bytes;
    }).then(({ value, ms }) => ({ bytes: value, ms }));
  } finally {
    await agent.close();
  }
}

const WRK = '/usr/bin/wrk';

/** "1.23ms", "850.00us", "1.02s" → ms. */
function wrkMs(text: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text ?? '');
  if (!m) return Number.NaN;
  const scale = { us: 1e-3, ms: 1, s: 1e3, m: 6e4 }[m[2] as 'us' | 'ms' | 's' | 'm'];
  return Number(m[1]) * scale;
}

/**
 * The same load from wrk (C, epoll, two threads): what a user measures from outside. autocannon is a Node
 * process parsing every response in JS on the same two cores, so it caps the rate it can observe; wrk needs
 * a fraction of that CPU and reads bodies without parsing them. Latency p99 is wrk's own (--latency).
 */
export async function wrkLoad(url: string, o: { connections: number; durationSec: number; threads?: number; headers?: Record<string, string> }): Promise<LoadResult> {
  const headerArgs = Object.entries(o.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const args = ['-t', String(o.threads ?? 2), '-c', String(o.connections), '-d', `${o.durationSec}s`, '--latency', '--timeout', '10s', ...headerArgs, url];
  const { stdout } = await promisify(execFile)(WRK, args, { timeout: (o.durationSec + 30) * 1000 });
  const total = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? Number.NaN);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const errors = (socketErrors ? socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0) + Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  const bytesText = /requests in [\d.]+\w+, ([\d.]+)(B|KB|MB|GB) read/.exec(stdout);
  const bytes = bytesText ? Number(bytesText[1]) * { B: 1, KB: 2 ** 10, MB: 2 ** 20, GB: 2 ** 30 }[bytesText[2] as 'B'] : Number.NaN;
  return {
    reqPerSec: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? Number.NaN),
    total,
    p99Ms: wrkMs(/^\s+99%\s+(\S+)/m.exec(stdout)?.[1]),
    bytes,
    errors,
  };
}
