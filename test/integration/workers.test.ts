// http.workers (issue 16.3): `regmirror serve` with 2 workers in front of the primary, as a real process tree,
// against the real registry behind the Hub-like front. What a worker answers itself (a stored blob by digest) it
// answers only after the same admission as the single process, and the primary still sees every access.
import { readFile, rm, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import bcrypt from 'bcryptjs';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BlobIndex } from '../../src/index/blob-index.js';
import { openIndex } from '../../src/index/db.js';
import type { Digest } from '../../src/registry/reference.js';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { metricValue } from '../fixtures/mirror.js';
import { spawnServe } from '../fixtures/mirror-process.js';
import { getBlob, pull } from '../fixtures/puller.js';
import { freePort } from '../fixtures/registry.js';

const POLLS = 200;
const POLL_MS = 25;
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const ALICE = basic('alice', 'wonderland');
const BOB = basic('bob', 'builder');

let front: HubFront;
let dir: string;
let url: string;
let child: ChildProcess;
const lines: Array<Record<string, unknown>> = [];

/** A new connection per call: the primary hands connections to the workers in turn. */
async function fresh<T>(use: (agent: Agent) => Promise<T>): Promise<T> {
  const agent = new Agent({ keepAliveTimeout: 10 });
  try {
    return await use(agent);
  } finally {
    await agent.close();
  }
}

/** Waits (bounded) for the asynchronous log to hold `count` lines matching `match`. */
async function logged(match: (line: Record<string, unknown>) => boolean, count = 1): Promise<Array<Record<string, unknown>>> {
  for (let i = 0; i < POLLS; i++) {
    const found = lines.filter(match);
    if (found.length >= count) return found;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return lines.filter(match);
}

/** Waits (bounded) until no download runs: a fill records its blob just after its client has the last byte. */
async function settled(): Promise<void> {
  for (let i = 0; i < POLLS; i++) {
    const text = await fresh((agent) => request(`${url}/metrics`, { dispatcher: agent }).then((r) => r.body.text()));
    if (metricValue(text, 'regmirror_blob_fills_in_flight') === 0) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

const blobLine = (digest: string, via: string) => (l: Record<string, unknown>) => l.msg === 'request' && l.via === via && typeof l.path === 'string' && l.path.endsWith(digest);

beforeAll(async () => {
  front = await startHubFront({ upstream: inject('registryUrl') });
  dir = await mkdtemp(join(tmpdir(), 'regmirror-workers-'));
  const line = (user: string, password: string) => `${user}:${bcrypt.hashSync(password, 5)}`;
  await writeFile(join(dir, 'htpasswd'), `${line('alice', 'wonderland')}\n${line('bob', 'builder')}\n`);
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  await writeFile(
    join(dir, 'config.yaml'),
    JSON.stringify({
      dataDir: join(dir, 'data'),
      upstream: { url: front.url },
      http: { workers: 2 },
      log: { level: 'info' },
      auth: { htpasswd: join(dir, 'htpasswd'), anonymous: ['docker.io/library/*'], authenticated: [], users: { alice: ['docker.io/someuser/*'] } },
    }),
  );
  child = await spawnServe(['--config', join(dir, 'config.yaml'), '--listen', `127.0.0.1:${port}`], port, (text) => {
    if (text.startsWith('{')) lines.push(JSON.parse(text) as Record<string, unknown>);
  });
});

afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await front?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a mirror with http.workers: 2', () => {
  const images = () => inject('images');

  it('pulls an image through the workers', async () => {
    const image = images().schema2;
    const result = await fresh((agent) => pull(url, 'library/schema2', '1', { dispatcher: agent }));
    expect(result.digest).toBe(image.digest);
    expect([...result.blobs.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(12 * 2 ** 20);
  });

  it('serves a warm blob from its file in a worker: no upstream request, no download, counted in /metrics', async () => {
    const layer = (images().schema2.platforms[0]?.layers as Array<{ digest: string; size: number }>).at(-1) as { digest: string; size: number };
    const metrics = async () => (await fresh((agent) => request(`${url}/metrics`, { dispatcher: agent }).then((r) => r.body.text())));
    await settled();
    const before = await metrics();
    front.reset();
    // Each worker learns the digest from the primary's first answer on its side, then answers from the file.
    for (let i = 0; i < 8; i++) expect(await fresh((agent) => getBlob(url, 'library/schema2', layer.digest, agent))).toBe(layer.size);
    const served = await logged(blobLine(layer.digest, 'file'), 6);
    expect(served.length).toBeGreaterThanOrEqual(6);
    expect(new Set(served.map((l) => l.worker))).toEqual(new Set([1, 2]));
    expect(front.count()).toBe(0);
    const after = await metrics();
    expect(metricValue(after, 'regmirror_blob_fills_total')).toBe(metricValue(before, 'regmirror_blob_fills_total'));
    // The workers' hits are in the primary's /metrics: summed, not replaced.
    const hits = (text: string) => metricValue(text, 'regmirror_cache_requests_total', { kind: 'blob', result: 'hit' });
    expect(hits(after) - hits(before)).toBe(8);
    expect(metricValue(after, 'regmirror_served_bytes_total', { source: 'cache' }) - metricValue(before, 'regmirror_served_bytes_total', { source: 'cache' })).toBe(8 * layer.size);
  });

  it('checks client auth in the worker before a stored blob is served: 401 anonymous, 403 outside the rules', async () => {
        const pulled = await fresh((agent) =>
      request(`${url}/v2/someuser/app/manifests/v1`, { dispatcher: agent, headers: { authorization: ALICE, accept: 'application/vnd.docker.distribution.manifest.v2+json' } }).then(async (r) => ({ status: r.statusCode, json: (await r.body.json()) as { layers: Array<{ digest: string }> } })),
    );
    expect(pulled.status).toBe(200);
    const digest = pulled.json.layers.at(-1)?.digest as string;
    const get = (authorization?: string) =>
      fresh((agent) => request(`${url}/v2/someuser/app/blobs/${digest}`, { dispatcher: agent, headers: authorization ? { authorization } : {} }).then(async (r) => (await r.body.arrayBuffer(), r.statusCode)));
    // Warm in both workers with the right user.
    for (let i = 0; i < 4; i++) expect(await get(ALICE)).toBe(200);
    await settled();
    for (let i = 0; i < 4; i++) expect(await get(ALICE)).toBe(200);
    expect(await logged(blobLine(digest, 'file'), 2)).not.toHaveLength(0);
    for (let i = 0; i < 4; i++) {
      expect(await get()).toBe(401);
      expect(await get(BOB)).toBe(403);
    }
    // The base layer is also library/schema2's, known to both workers there: still no access to it through someuser/app.
    const base = pulled.json.layers[0]?.digest as string;
    const anonymous = await fresh((agent) => request(`${url}/v2/someuser/app/blobs/${base}`, { dispatcher: agent }).then(async (r) => (await r.body.arrayBuffer(), r.statusCode)));
    expect(anonymous).toBe(401);
  });

  it('fetches a blob whose file was removed between two requests again, correctly', async () => {
    const layer = (images().schema2.platforms[0]?.layers as Array<{ digest: string; size: number }>).at(-1) as { digest: string; size: number };
    const hex = layer.digest.slice('sha256:'.length);
    await rm(join(dir, 'data', 'blobs', 'sha256', hex.slice(0, 2), hex));
    front.reset();
    for (let i = 0; i < 4; i++) expect(await fresh((agent) => getBlob(url, 'library/schema2', layer.digest, agent))).toBe(layer.size);
    expect(front.count({ kind: 'blob' })).toBeGreaterThanOrEqual(1);
    await settled();
  });

  it('reports what workers served to the primary, and stops every process on SIGTERM', async () => {
    const layer = (images().schema2.platforms[0]?.layers as Array<{ digest: string; size: number }>)[0] as { digest: string; size: number };
    for (let i = 0; i < 4; i++) await fresh((agent) => getBlob(url, 'library/schema2', layer.digest, agent));
    await logged(blobLine(layer.digest, 'file'), 2);
    const since = Date.now();
    const servedBefore = (await logged(blobLine(layer.digest, 'file'))).length;
    for (let i = 0; i < 4; i++) await fresh((agent) => getBlob(url, 'library/schema2', layer.digest, agent));
    expect((await logged(blobLine(layer.digest, 'file'), servedBefore + 4)).length).toBe(servedBefore + 4);
    const pid = child.pid as number;
    const workers = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).split(' ').filter(Boolean).map(Number);
    expect(workers).toHaveLength(2);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    for (const worker of workers) expect(() => process.kill(worker, 0)).toThrow();
    // The primary flushed the workers' accesses into the index before it closed.
    const db = await openIndex(join(dir, 'data'));
    try {
      const record = await new BlobIndex(db, 100).get(layer.digest as Digest);
      expect(record?.lastAccessAt).toBeGreaterThanOrEqual(since);
    } finally {
      await db.close();
    }
  });
});
