// A worker's front (http.workers) in-process, in front of a primary in-process on its internal socket: what it
// answers itself and what it forwards, header for header. The process tree itself is test/integration/workers.test.ts.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import bcrypt from 'bcryptjs';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createMirror, type Mirror } from '../../src/app.js';
import { createWorkerFront, type WorkerFront } from '../../src/app-worker.js';
import { workerCount } from '../../src/cli/serve.js';
import { parseConfig } from '../../src/config/load.js';
import { AccessReport, accessedDigests, isToPrimary, type ToPrimary } from '../../src/http/workers/ipc.js';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { metricValue } from '../fixtures/mirror.js';
import { DOCKER_ACCEPT, getBlob } from '../fixtures/puller.js';

let front: HubFront;
let dir: string;
let mirror: Mirror;
let worker: WorkerFront;
let url: string;
const accessed: string[] = [];

beforeAll(async () => {
  front = await startHubFront({ upstream: inject('registryUrl') });
  dir = await mkdtemp(join(tmpdir(), 'regmirror-worker-front-'));
  const config = parseConfig({ listen: '127.0.0.1:0', dataDir: dir, upstream: { url: front.url }, log: { level: 'silent' }, shutdownTimeout: '2s', http: { workers: 2 } });
  const log = pino({ level: 'silent' });
  mirror = await createMirror(config, log, { peerMetrics: async () => [await worker.metrics.registry.getMetricsAsJSON()] });
  const socketPath = await mirror.listenPrimary(64);
  worker = await createWorkerFront(config, log, { socketPath, workerId: 1, accessed: (digest) => accessed.push(digest) });
  const { port } = await worker.listen();
  url = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await worker?.close();
  await mirror?.close();
  await front?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Waits (bounded) until no download runs: a fill records its blob just after its client has the last byte. */
async function settled(): Promise<void> {
  for (let i = 0; i < 200 && (await mirror.metrics.fillsInFlight.get()).values[0]?.value !== 0; i++) await new Promise((resolve) => setTimeout(resolve, 25));
}

const get = async (path: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') => {
  const res = await request(`${url}${path}`, { method, headers: { accept: DOCKER_ACCEPT, ...headers } });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
};

describe('a worker in front of the primary', () => {
  it('forwards a manifest by tag, then answers the same digest from memory, HEAD and GET alike', async () => {
    const image = inject('images').schema2;
    const byTag = await get('/v2/library/schema2/manifests/1');
    expect(byTag.status).toBe(200);
    expect(byTag.headers['x-regmirror-cache']).toBeUndefined();
    const digest = byTag.headers['docker-content-digest'] as string;
    expect(digest).toBe(image.digest);
    const first = await get(`/v2/library/schema2/manifests/${digest}`);
    front.reset();
    accessed.length = 0;
    const second = await get(`/v2/library/schema2/manifests/${digest}`);
    const head = await get(`/v2/library/schema2/manifests/${digest}`, {}, 'HEAD');
    expect(second.body.equals(first.body)).toBe(true);
    expect([second.headers['content-type'], second.headers.etag]).toEqual([first.headers['content-type'], `"${digest}"`]);
    expect([head.status, head.headers['content-length'], head.body.length]).toEqual([200, String(first.body.length), 0]);
    expect(front.count()).toBe(0);
    expect(accessed).toEqual([digest, digest]);
  });

  it('serves a known blob from its file with Range, and a removed one again through the primary', async () => {
    const layer = inject('images').schema2.platforms[0]?.layers.at(-1) as { digest: string; size: number };
    expect(await getBlob(url, 'library/schema2', layer.digest)).toBe(layer.size);
    await settled();
    front.reset();
    const part = await get(`/v2/library/schema2/blobs/${layer.digest}`, { range: 'bytes=10-19' });
    expect([part.status, part.headers['content-range'], part.body.length]).toEqual([206, `bytes 10-19/${layer.size}`, 10]);
    const head = await get(`/v2/library/schema2/blobs/${layer.digest}`, {}, 'HEAD');
    expect([head.status, head.headers['content-length']]).toEqual([200, String(layer.size)]);
    expect(front.count()).toBe(0);
    const hex = layer.digest.slice('sha256:'.length);
    await rm(join(dir, 'blobs', 'sha256', hex.slice(0, 2), hex));
    expect(await getBlob(url, 'library/schema2', layer.digest)).toBe(layer.size);
    await settled();
  });

  it('answers a digest known as a blob on /manifests/ as the primary does, not with the blob', async () => {
    const layer = inject('images').schema2.platforms[0]?.layers.at(-1) as { digest: string; size: number };
    expect(await getBlob(url, 'library/schema2', layer.digest)).toBe(layer.size);
    expect(await getBlob(url, 'library/schema2', layer.digest)).toBe(layer.size);
    await settled();
    for (const method of ['GET', 'HEAD'] as const) {
      // What the primary makes of it (upstream's answer to a manifest GET by a layer's digest), but never the layer.
      const asManifest = await get(`/v2/library/schema2/manifests/${layer.digest}`, {}, method);
      expect([method, asManifest.status >= 400, asManifest.headers['docker-content-digest'], asManifest.body.length < layer.size]).toEqual([method, true, undefined, true]);
    }
  });

  it('never answers a repository it has not seen the digest in from memory: the primary decides', async () => {
    const layer = inject('images').schema2.platforms[0]?.layers.at(-1) as { digest: string; size: number };
    const other = await get(`/v2/library/nothere/blobs/${layer.digest}`, {}, 'HEAD');
    // Public content is shared by digest on a registry without credentials: the primary says so, not the worker.
    expect(other.status).toBe(200);
    const unknown = await get(`/v2/library/schema2/blobs/sha256:${'0'.repeat(64)}`);
    expect(unknown.status).toBe(404);
    expect((JSON.parse(unknown.body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('BLOB_UNKNOWN');
  });

  it('forwards a request that carries Expect: 100-continue (its own server has answered the 100 already)', async () => {
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = httpRequest(`${url}/v2/`, { headers: { expect: '100-continue' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      req.on('error', reject);
      req.on('continue', () => req.end());
    });
    expect(status).toBe(200);
  });

  it('sums its own counters into /metrics', async () => {
    const text = (await get('/metrics')).body.toString();
    const own = await worker.metrics.registry.metrics();
    expect(metricValue(own, 'regmirror_cache_requests_total', { kind: 'manifest', result: 'hit' })).toBeGreaterThan(0);
    expect(metricValue(text, 'regmirror_cache_requests_total', { kind: 'manifest', result: 'hit' })).toBeGreaterThanOrEqual(metricValue(own, 'regmirror_cache_requests_total', { kind: 'manifest', result: 'hit' }));
    // Durations are the worker's alone (the primary's socket does not time forwarded requests); the scrape's own
    // request ended after it was rendered.
    expect(metricValue(text, 'regmirror_http_request_duration_seconds_count')).toBe(metricValue(own, 'regmirror_http_request_duration_seconds_count') - 1);
  });
});

describe('a worker in front of a primary with client auth', () => {
  it('limits failed logins per client address, not for every client at once (the primary sees the worker\'s address)', async () => {
    const authDir = await mkdtemp(join(tmpdir(), 'regmirror-worker-auth-'));
    await writeFile(join(authDir, 'htpasswd'), `alice:${bcrypt.hashSync('wonderland', 4)}\n`);
    const config = parseConfig({
      listen: '127.0.0.1:0',
      dataDir: join(authDir, 'data'),
      upstream: { url: front.url },
      log: { level: 'silent' },
      shutdownTimeout: '1s',
      http: { workers: 2 },
      auth: { htpasswd: join(authDir, 'htpasswd'), anonymous: ['docker.io/library/*'] },
    });
    const log = pino({ level: 'silent' });
    const primary = await createMirror(config, log);
    let guarded: WorkerFront | undefined;
    // Another client address: loopback is a /8 on Linux.
    const elsewhere = new Agent({ keepAliveTimeout: 10, localAddress: '127.0.0.2' });
    try {
      guarded = await createWorkerFront(config, log, { socketPath: await primary.listenPrimary(8), workerId: 1, accessed: () => undefined });
      const { port } = await guarded.listen();
      const login = async (password: string, dispatcher?: Agent) => {
        const res = await request(`http://127.0.0.1:${port}/v2/`, { headers: { authorization: `Basic ${Buffer.from(`alice:${password}`).toString('base64')}` }, ...(dispatcher ? { dispatcher } : {}) });
        await res.body.dump();
        return res.statusCode;
      };
      for (let i = 0; i < 10; i++) expect(await login('wrong', elsewhere)).toBe(401);
      expect(await login('wonderland', elsewhere)).toBe(429);
      expect(await login('wonderland')).toBe(200);
    } finally {
      await elsewhere.close();
      await guarded?.close();
      await primary.close();
      await rm(authDir, { recursive: true, force: true });
    }
  });
});

describe('a worker without its primary', () => {
  it('answers 503 UNAVAILABLE in the registry JSON, and http.workers auto is one per core', async () => {
    const config = parseConfig({ listen: '127.0.0.1:0', dataDir: dir, upstream: { url: 'none' }, log: { level: 'silent' }, shutdownTimeout: '1s' });
    const orphan = await createWorkerFront(config, pino({ level: 'silent' }), { socketPath: join(dir, 'no-primary.sock'), workerId: 9, accessed: () => undefined });
    try {
      const { port } = await orphan.listen();
      const res = await request(`http://127.0.0.1:${port}/v2/`);
      const body = (await res.body.json()) as { errors: Array<{ code: string }> };
      expect([res.statusCode, body.errors[0]?.code]).toEqual([503, 'UNAVAILABLE']);
      // A blob whose file is here is still not sent without the primary's word for it.
      const layer = inject('images').schema2.platforms[0]?.layers.at(-1) as { digest: string };
      const blob = await request(`http://127.0.0.1:${port}/v2/library/schema2/blobs/${layer.digest}`);
      await blob.body.dump();
      expect(blob.statusCode).toBe(503);
    } finally {
      await orphan.close();
    }
    expect(workerCount('auto')).toBe(availableParallelism());
    expect(workerCount(3)).toBe(3);
  });
});

describe('access reports', () => {
  it('sends the digests noted since the last report, once, and only well-formed ones are taken', async () => {
    const sent: ToPrimary[] = [];
    const report = new AccessReport((m) => (sent.push(m), Promise.resolve()));
    const d = `sha256:${'a'.repeat(64)}`;
    report.note(d as never);
    report.note(d as never);
    await report.close();
    await report.flush();
    expect(sent).toEqual([{ type: 'regmirror:accessed', digests: [d] }]);
    expect(isToPrimary(sent[0])).toBe(true);
    expect(isToPrimary({ type: 'other' })).toBe(false);
    expect(accessedDigests({ digests: [d, 'sha256:short', 7] })).toEqual([d]);
    expect(accessedDigests({ digests: 'nope' })).toEqual([]);
  });
});
