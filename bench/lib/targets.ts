// Owns: the three servers under comparison, each its own process on a free loopback port with a fresh
// directory: regmirror (dist/src/main.js), distribution 2.8 in proxy mode (docker-registry), nginx serving the
// image's bytes as static files. start → ready wait (bounded) → stop (SIGTERM, then SIGKILL, by PID only).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../test/fixtures/registry.js';
import type { BuiltImage } from '../../test/fixtures/images.js';

export type TargetName = 'regmirror' | 'regmirror-auto' | 'distribution' | 'nginx' | 'nginx-auto';

export interface Target {
  name: TargetName;
  url: string;
  /**
   * The process whose RSS and CPU are sampled: the one serving requests (nginx with one worker runs with
   * master_process off, so one process as well); for nginx-auto and regmirror with workers, the primary only.
   */
  pid: number;
  stop(): Promise<void>;
}

/** Blobs and manifests nginx serves: by tag and by digest, under the repository name. */
export interface StaticImage {
  repo: string;
  tag: string;
  image: BuiltImage;
  /** Extra blobs (the 1 MiB and 1 GiB ones) as [digest, bytes]. */
  extraBlobs: ReadonlyArray<readonly [string, Buffer]>;
}

const READY_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;
const STDERR_CAP = 16 * 1024;
const ROOT = new URL('../..', import.meta.url).pathname;

async function waitExit(child: ChildProcess, exited: Promise<void>, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  const timer = new AbortController();
  try {
    return await Promise.race([exited.then(() => true), sleep(ms, false, { signal: timer.signal })]);
  } finally {
    timer.abort();
  }
}

/** Bytes per second a `slow-pipe` log reader takes: a log shipper (docker, journald) that is not infinitely fast. */
const SLOW_PIPE_BYTES_PER_SEC = 4e6;

/** Drains `stdout` at SLOW_PIPE_BYTES_PER_SEC, every 10 ms: the writer meets a full pipe whenever it logs faster. */
function drainSlowly(stdout: NodeJS.ReadableStream & { read(size?: number): unknown }, exited: Promise<void>): void {
  const timer = setInterval(() => {
    for (let budget = SLOW_PIPE_BYTES_PER_SEC / 100; budget > 0; ) {
      const chunk = stdout.read() as Buffer | null;
      if (chunk === null) break;
      budget -= chunk.length;
    }
  }, 10);
  void exited.then(() => clearInterval(timer));
}

async function launch(name: TargetName, command: string, args: string[], env: NodeJS.ProcessEnv, port: number, dir: string, logSink: LogSink = 'null'): Promise<Target> {
  const child = spawn(command, args, { env, stdio: ['ignore', logSink === 'null' ? 'ignore' : 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => (stderr = (stderr + s).slice(-STDERR_CAP)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.stdout) drainSlowly(child.stdout, exited);
  child.once('error', (err) => (stderr += `\nspawn error: ${err.message}`));
  const killOnExit = (): void => void child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const stop = async (): Promise<void> => {
    process.removeListener('exit', killOnExit);
    child.kill('SIGTERM');
    if (!(await waitExit(child, exited, STOP_GRACE_MS))) {
      child.kill('SIGKILL');
      await waitExit(child, exited, STOP_GRACE_MS);
    }
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    await rm(`${dir}.yaml`, { force: true }); // startRegmirror's config file, if it wrote one
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.pid === undefined) {
      await stop();
      throw new Error(`${name} exited during startup: ${stderr}`);
    }
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1_000) });
      await res.body?.cancel();
      break; // any HTTP answer means it listens (nginx has no /v2/ route)
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} not ready after ${READY_TIMEOUT_MS} ms: ${stderr}`);
    }
    await sleep(50);
  }
  return { name, url, pid: child.pid, stop };
}

export interface RegmirrorOptions {
  /** Config `log.level`; the bench runs at warn unless a scenario asks for the default (info: one line per request). */
  logLevel?: string;
  /** Config `http.workers` as REGMIRROR_HTTP_WORKERS; absent: the default. */
  workers?: string;
  /**
   * > 1: the measurement-only cluster prototype (scripts/cluster-prototype.mjs), N whole mirrors on one port,
   * each warmed on its own; its pid is the primary, figures are summed over the process tree.
   */
  prototypeProcesses?: number;
  /** Extra node flags (e.g. a V8 heap setting to compare). */
  nodeFlags?: string[];
  /** Another build's dist/ to run instead (before/after comparisons in one run). */
  dist?: string;
  /** Where its stdout (the log) goes: /dev/null, or a pipe drained at 4 MB/s (see drainSlowly). */
  logSink?: LogSink;
  /** A config file's text (YAML), for a variant of the defaults (bench:trace turns prefetch on). */
  config?: string;
  /** Another build's dist/src/main.js (bench:trace compares with an older commit's build in the same run). */
  main?: string;
}

export type LogSink = 'null' | 'slow-pipe';

export async function startRegmirror(upstream: string, o: RegmirrorOptions = {}): Promise<Target> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-regmirror-'));
  const port = await freePort();
  // BENCH_PROF=1: a V8 CPU profile per regmirror process in bench/profiles/ (written when it exits on SIGTERM).
  const prof = process.env.BENCH_PROF === '1' ? ['--cpu-prof', '--cpu-prof-dir', join(ROOT, 'bench/profiles')] : [];
  const config: string[] = [];
  if (o.config !== undefined) {
    // Beside the data directory, not in it: the mirror owns what is inside.
    const file = `${dir}.yaml`;
    await writeFile(file, o.config);
    config.push('--config', file);
  }
  const cluster = (o.prototypeProcesses ?? 1) > 1 ? [join(ROOT, 'scripts/cluster-prototype.mjs'), String(o.prototypeProcesses)] : [];
  const main = o.main ?? join(o.dist ?? join(ROOT, 'dist'), 'src/main.js');
  const args = [...prof, ...(o.nodeFlags ?? []), ...cluster, main, 'serve', ...config, '--listen', `127.0.0.1:${port}`, '--data-dir', dir, '--upstream', upstream, '--log-level', o.logLevel ?? 'warn'];
  // The allocator settings the Dockerfile ships with (see there): regmirror as it is deployed.
  const env: NodeJS.ProcessEnv = { ...process.env, REGMIRROR_TAG_TTL: '1h', MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_ARENA_MAX: '2' };
  if (o.workers !== undefined) env.REGMIRROR_HTTP_WORKERS = o.workers;
  return launch(o.workers === 'auto' ? 'regmirror-auto' : 'regmirror', process.execPath, args, env, port, dir, o.logSink);
}

export async function startDistributionProxy(upstream: string): Promise<Target> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-distribution-'));
  await mkdir(join(dir, 'storage'));
  const port = await freePort();
  const config = {
    version: 0.1,
    log: { level: 'warn', accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: join(dir, 'storage') }, cache: { blobdescriptor: 'inmemory' } },
    http: { addr: `127.0.0.1:${port}` },
    proxy: { remoteurl: upstream },
  };
  const configPath = join(dir, 'config.yml');
  await writeFile(configPath, JSON.stringify(config, null, 2)); // JSON is YAML
  // REGISTRY_* variables override config keys in distribution; drop any inherited ones.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
  return launch('distribution', '/usr/bin/docker-registry', ['serve', configPath], env, port, dir);
}

/**
 * Writes ROOT/v2/<repo>/{manifests,blobs}/… and an nginx.conf that serves them. `workers` 1: one process
 * (master_process off); 'auto': a master and one worker per core (as nginx ships), target `nginx-auto`.
 */
export async function startNginx(content: StaticImage, workers: 1 | 'auto' = 1): Promise<Target> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-nginx-'));
  const port = await freePort();
  const base = join(dir, 'root/v2', content.repo);
  await mkdir(join(base, 'manifests'), { recursive: true });
  await mkdir(join(base, 'blobs'), { recursive: true });
  const manifests = [content.image.top, ...content.image.children];
  const exact: string[] = [];
  for (const m of manifests) {
    const refs = m === content.image.top ? [m.digest, content.tag] : [m.digest];
    for (const ref of refs) {
      await writeFile(join(base, 'manifests', ref), m.bytes);
      // One exact location per manifest: the header pull() checks, the media type the manifest declares.
      exact.push(`    location = /v2/${content.repo}/manifests/${ref} {
      default_type ${m.mediaType};
      add_header Docker-Content-Digest ${m.digest};
    }`);
    }
  }
  for (const blob of content.image.blobs.values()) await writeFile(join(base, 'blobs', blob.digest), blob.bytes);
  for (const [digest, bytes] of content.extraBlobs) await writeFile(join(base, 'blobs', digest), bytes);
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) await mkdir(join(dir, 'tmp', d), { recursive: true });
  const conf = `
master_process ${workers === 1 ? 'off' : 'on'};
${workers !== 1 && process.getuid?.() === 0 ? 'user root;  # else workers run as nobody and cannot read the mkdtemp (0700) root' : ''}
daemon off;
worker_processes ${workers};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/tmp/client_body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${dir}/root;
${exact.join('\n')}
    location ~ /blobs/ { default_type application/octet-stream; }
  }
}
`;
  const confPath = join(dir, 'nginx.conf');
  await writeFile(confPath, conf);
  return launch(workers === 1 ? 'nginx' : 'nginx-auto', '/usr/sbin/nginx', ['-e', join(dir, 'error.log'), '-p', dir, '-c', confPath], process.env, port, dir);
}
