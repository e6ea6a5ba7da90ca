// The primary's side of http.workers in-process (http/workers/pool.ts): real workers forked from dist/ in front
// of a mirror in this process, scraped for /metrics, restarted when one dies, stopped on close.
import { fork } from 'node:child_process';
import cluster from 'node:cluster';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMirror, type Mirror } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import type { ToPrimary, ToWorker } from '../../src/http/workers/ipc.js';
import { WorkerPool } from '../../src/http/workers/pool.js';
import { freePort } from '../fixtures/registry.js';

const POLLS = 200;
const POLL_MS = 25;
const alive = () => Object.values(cluster.workers ?? {}).filter((w) => w && !w.isDead());

let dir: string;
let mirror: Mirror;
let pool: WorkerPool;
let url: string;
let failed = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'regmirror-pool-'));
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  const config = parseConfig({ listen: `127.0.0.1:${port}`, dataDir: dir, upstream: { url: 'none' }, log: { level: 'silent' }, shutdownTimeout: '2s', http: { workers: 2 } });
  const log = pino({ level: 'silent' });
  pool = new WorkerPool({ count: 2, exec: join(process.cwd(), 'dist/src/cli/serve-worker.js'), config, log, accessed: () => undefined, failed: () => failed++ });
  mirror = await createMirror(config, log, { peerMetrics: () => pool.scrape() });
  pool.socketPath = await mirror.listenPrimary(64);
  await pool.start();
});

afterAll(async () => {
  await pool?.close(2000);
  await mirror?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the workers of a primary', () => {
  it('serve the port and report their metrics', async () => {
    const res = await request(`${url}/v2/`);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(await pool.scrape()).toHaveLength(2);
  });

  it('restarts a worker that dies', async () => {
    const [victim] = alive();
    victim?.process.kill('SIGKILL');
    let listening = 0;
    for (let i = 0; i < POLLS && listening < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      listening = alive().filter((w) => w !== victim).length === 2 ? (await pool.scrape()).length : 0;
    }
    expect(listening).toBe(2);
    expect(failed).toBe(0);
    const res = await request(`${url}/v2/`);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  });

  it('gives up after five restarts within a minute, and says so once', async () => {
    // One restart is spent above; four more are allowed, the fifth death within the window stops restarting.
    for (let kill = 0; kill < 10 && failed === 0; kill++) {
      const [victim] = alive();
      const exited = new Promise((resolve) => victim?.once('exit', resolve));
      victim?.process.kill('SIGKILL');
      await exited;
      for (let i = 0; i < POLLS && failed === 0 && alive().length < 2; i++) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    expect(failed).toBe(1);
  });

  it('stops every worker on close', async () => {
    await pool.close(2000);
    expect(alive()).toEqual([]);
    expect(await pool.scrape()).toEqual([]);
  });
});

describe('a pool closed while it restarts a worker', () => {
  it('forks no worker once closing, not even for the one that was starting', async () => {
    const port = await freePort();
    const config = parseConfig({ listen: `127.0.0.1:${port}`, dataDir: dir, upstream: { url: 'none' }, log: { level: 'silent' }, shutdownTimeout: '1s' });
    let forked = 0;
    const count = () => forked++;
    cluster.on('fork', count);
    const closing = new WorkerPool({ count: 1, exec: join(process.cwd(), 'dist/src/cli/serve-worker.js'), config, log: pino({ level: 'silent' }), accessed: () => undefined, failed: () => undefined });
    closing.socketPath = pool.socketPath;
    try {
      await closing.start();
      const [victim] = alive();
      const exited = new Promise((resolve) => victim?.once('exit', resolve));
      victim?.process.kill('SIGKILL');
      await exited;
      // Its replacement is starting: close() stops it before it listens.
      expect(forked).toBe(2);
      await closing.close(1000);
      expect(forked).toBe(2);
      expect(alive()).toEqual([]);
    } finally {
      cluster.off('fork', count);
      for (const worker of alive()) worker?.process.kill('SIGKILL');
    }
  });
});

describe('a worker process', () => {
  it('still starts when a metrics scrape reaches it before its start', async () => {
    const config = parseConfig({ listen: '127.0.0.1:0', dataDir: dir, upstream: { url: 'none' }, log: { level: 'silent' }, shutdownTimeout: '1s' });
    const child = fork(join(process.cwd(), 'dist/src/cli/serve-worker.js'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const messages: ToPrimary[] = [];
    const answered = new Promise<void>((resolve) =>
      child.on('message', (message: ToPrimary) => {
        messages.push(message);
        if (message.type === 'regmirror:metrics') resolve();
      }),
    );
    const exited = once(child, 'exit');
    try {
      const ready = new Promise<void>((resolve) => child.once('message', () => resolve()));
      await ready;
      const send = (message: ToWorker) => new Promise<void>((resolve) => child.send(message, () => resolve()));
      await send({ type: 'regmirror:scrape', id: 1 });
      await send({ type: 'regmirror:start', config, socketPath: join(dir, 'none.sock') });
      // Only a started worker answers a scrape (its handler comes with its front); one that took the first scrape
      // for its start never does. Asked again (bounded) until it has started.
      let done = false;
      void answered.then(() => (done = true));
      for (let id = 2; id < 2 + POLLS && !done; id++) {
        await send({ type: 'regmirror:scrape', id });
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
      expect(done).toBe(true);
      expect(messages.find((m) => m.type === 'regmirror:metrics' && m.id === 1)).toBeUndefined();
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }, 10_000);
});
