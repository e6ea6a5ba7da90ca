// The upstream client when upstream misbehaves: 404 is absence, 5xx and timeouts are temporary UpstreamErrors that
// open the circuit breaker, 429 carries Retry-After and settles a half-open trial, wrong bytes are a content error.
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { OCI_MANIFEST } from '../../src/registry/media-types.js';
import { parseDigest, parseRepository } from '../../src/registry/reference.js';
import type { RegistryClient } from '../../src/upstream/client.js';
import { UpstreamContentError, UpstreamError } from '../../src/upstream/errors.js';
import { sampleManifest, TestClock, testClient } from '../faults/client.js';
import { registryError, startFaultServer, type FaultHandler, type FaultServer } from '../faults/server.js';

const alpine = parseRepository('library/alpine');
const accept = { accept: OCI_MANIFEST };
const manifest = sampleManifest();
const blobDigest = parseDigest(`sha256:${'c'.repeat(64)}`);

const servers: FaultServer[] = [];
const clients: RegistryClient[] = [];
afterEach(async () => {
  // Servers first: dropping their connections fails any request still in flight, so the clients close at once.
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

async function setup(handler: FaultHandler, upstream: Parameters<typeof testClient>[2] = {}) {
  const server = await startFaultServer(handler);
  servers.push(server);
  const clock = new TestClock();
  const client = testClient(server.url, clock, { breakerFailures: 2, breakerCooldown: '30s', ...upstream });
  clients.push(client);
  return { server, clock, client };
}

function sendManifest(res: ServerResponse, body = manifest.bytes, digest: string = manifest.digest): void {
  res.writeHead(200, { 'content-type': OCI_MANIFEST, 'docker-content-digest': digest, 'content-length': String(body.length) });
  res.end(body);
}

/** The error a promise rejects with (the test fails if it resolves). */
async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable('expected a rejection'),
    (err: unknown) => err,
  );
}

describe('expected absence', () => {
  it('returns undefined for a 404 on every kind of request, and leaves the breaker closed', async () => {
    const { client } = await setup((req, res) => registryError(res, 404, 'MANIFEST_UNKNOWN'));
    expect(await client.resolveManifest(alpine, 'latest', accept)).toBeUndefined();
    expect(await client.fetchManifest(alpine, 'latest', accept)).toBeUndefined();
    expect(await client.statBlob(alpine, blobDigest, {})).toBeUndefined();
    expect(await client.fetchBlob(alpine, blobDigest, {})).toBeUndefined();
    expect(await client.listTags(alpine, '', {})).toBeUndefined();
    expect(client.breaker.state).toBe('closed');
  });
});

describe('upstream failures', () => {
  it('turns a 5xx into a temporary UpstreamError with the status and the registry error body', async () => {
    const { client } = await setup((req, res) => registryError(res, 503, 'UNAVAILABLE', { 'retry-after': '5' }));
    const err = await failure(client.fetchManifest(alpine, 'latest', accept));
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ code: 'UPSTREAM_ERROR', status: 503, temporary: true, retryAfterSeconds: 5 });
    expect((err as UpstreamError).errors).toEqual([{ code: 'UNAVAILABLE', message: 'fault: UNAVAILABLE' }]);
  });

  it('turns a headers timeout and a refused connection into temporary UpstreamErrors without a status', async () => {
    const { client, server } = await setup(() => undefined /* never answers */, { headersTimeout: '100ms', breakerFailures: 5 });
    const stalled = await failure(client.resolveManifest(alpine, 'latest', accept));
    expect(stalled).toMatchObject({ code: 'UPSTREAM_ERROR', status: undefined, temporary: true });
    expect((stalled as Error).cause).toBeInstanceOf(Error);
    await server.close();
    const refused = await failure(client.resolveManifest(alpine, 'latest', accept));
    expect(refused).toMatchObject({ code: 'UPSTREAM_ERROR', status: undefined, temporary: true });
  });

  it('opens the breaker after breakerFailures failures, fails fast while open, and lets one trial through after the cool-down', async () => {
    let status = 503;
    let holding = false;
    let release = () => {};
    const hold = new Promise<void>((resolve) => (release = resolve));
    const { client, server, clock } = await setup(async (req, res) => {
      if (holding) await hold;
      if (status === 200) sendManifest(res);
      else registryError(res, status, 'UNAVAILABLE');
    });
    for (let i = 0; i < 2; i++) await expect(client.fetchManifest(alpine, 'latest', accept)).rejects.toMatchObject({ status: 503 });
    expect(client.breaker.state).toBe('open');

    const fast = await failure(client.fetchManifest(alpine, 'latest', accept));
    expect(fast).toMatchObject({ code: 'UPSTREAM_ERROR', status: undefined, temporary: true, retryAfterSeconds: 30 });
    clock.advance(20_000);
    await expect(client.resolveManifest(alpine, 'latest', accept)).rejects.toMatchObject({ retryAfterSeconds: 10 });
    expect(server.requests).toHaveLength(2); // nothing reached upstream while open

    clock.advance(10_001);
    expect(client.breaker.state).toBe('half-open');
    status = 200;
    holding = true;
    const trial = client.fetchManifest(alpine, 'latest', accept);
    await expect.poll(() => server.requests.length).toBe(3);
    // While the trial is out, everyone else still fails fast.
    await expect(client.resolveManifest(alpine, 'latest', accept)).rejects.toMatchObject({ status: undefined });
    expect(server.requests).toHaveLength(3);
    release();
    expect((await trial)?.digest).toBe(manifest.digest);
    expect(client.breaker.state).toBe('closed');
    expect((await client.resolveManifest(alpine, 'latest', accept))?.digest).toBe(manifest.digest);
  });

  it('re-opens the breaker for another cool-down when the trial fails', async () => {
    const { client, server, clock } = await setup((req, res) => registryError(res, 502, 'UNAVAILABLE'));
    for (let i = 0; i < 2; i++) await expect(client.resolveManifest(alpine, 'latest', accept)).rejects.toMatchObject({ status: 502 });
    clock.advance(30_001);
    await expect(client.resolveManifest(alpine, 'latest', accept)).rejects.toMatchObject({ status: 502 });
    expect(client.breaker.state).toBe('open');
    await expect(client.resolveManifest(alpine, 'latest', accept)).rejects.toMatchObject({ status: undefined, retryAfterSeconds: 30 });
    expect(server.requests).toHaveLength(3);
  });

  it('settles a half-open trial that got a 429: the breaker closes instead of staying shut', async () => {
    let status = 503;
    const { client, server, clock } = await setup((req, res) => {
      if (status === 200) sendManifest(res);
      else registryError(res, status, status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', { 'retry-after': '10' });
    });
    for (let i = 0; i < 2; i++) await expect(client.resolveManifest(alpine, 'latest', accept)).rejects.toMatchObject({ status: 503 });
    clock.advance(30_001);
    status = 429;
    await expect(client.resolveManifest(alpine, 'latest', accept)).rejects.toMatchObject({ status: 429, temporary: true });
    expect(client.breaker.state).toBe('closed');
    status = 200;
    expect((await client.resolveManifest(alpine, 'latest', accept))?.digest).toBe(manifest.digest);
    expect(server.requests).toHaveLength(4);
  });

  it('does not count a request its caller abandoned against the breaker', async () => {
    const { client } = await setup(() => undefined /* never answers */, { breakerFailures: 1 });
    const abort = new AbortController();
    const pending = failure(client.resolveManifest(alpine, 'latest', { ...accept, signal: abort.signal }));
    abort.abort();
    expect(await pending).not.toBeInstanceOf(UpstreamError);
    expect(client.breaker.state).toBe('closed');
  });
});

describe('pull limits', () => {
  it("passes a 429's Retry-After through, and refuses manifest GETs itself until that time has passed", async () => {
    let limited = true;
    const { client, server, clock } = await setup((req, res) => {
      if (limited) registryError(res, 429, 'TOOMANYREQUESTS', { 'retry-after': '17' });
      else sendManifest(res);
    });
    const err = await failure(client.fetchManifest(alpine, 'latest', accept));
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ status: 429, temporary: true, retryAfterSeconds: 17 });
    expect((err as UpstreamError).errors[0]?.code).toBe('TOOMANYREQUESTS');

    limited = false;
    clock.advance(7_000);
    await expect(client.fetchManifest(alpine, 'latest', accept)).rejects.toMatchObject({ status: 429, retryAfterSeconds: 10 });
    expect(server.requests).toHaveLength(1); // refused here: a GET would only spend time
    expect((await client.resolveManifest(alpine, 'latest', accept))?.digest).toBe(manifest.digest); // HEADs are free
    clock.advance(10_001);
    expect((await client.fetchManifest(alpine, 'latest', accept))?.digest).toBe(manifest.digest);
    expect(server.requests).toHaveLength(3);
  });
});

describe('content checks', () => {
  const other = sampleManifest('d');

  it('rejects manifest bytes that do not hash to the digest asked for, or to the one announced', async () => {
    const { client } = await setup((req, res) => sendManifest(res, manifest.bytes, req.url?.includes('/announced-wrong') ? other.digest : manifest.digest));
    const byDigest = await failure(client.fetchManifest(alpine, other.digest, accept));
    expect(byDigest).toBeInstanceOf(UpstreamContentError);
    expect(byDigest).toMatchObject({ code: 'UPSTREAM_CONTENT_INVALID' });
    await expect(client.fetchManifest(alpine, 'announced-wrong', accept)).rejects.toBeInstanceOf(UpstreamContentError);
    expect(await client.fetchManifest(alpine, 'latest', accept)).toEqual({ digest: manifest.digest, mediaType: OCI_MANIFEST, bytes: manifest.bytes });
    expect(client.breaker.state).toBe('closed');
  });

  it('resumes a blob at an offset only when upstream answers 206 from that byte', async () => {
    const blob = Buffer.from('0123456789');
    let honourRange = false;
    const { client } = await setup((req, res) => {
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
      if (!honourRange || start === 0) {
        res.writeHead(200, { 'content-length': String(blob.length) });
        res.end(blob);
        return;
      }
      res.writeHead(206, { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}`, 'content-length': String(blob.length - start) });
      res.end(blob.subarray(start));
    });
    await expect(client.fetchBlob(alpine, blobDigest, { offset: 4 })).rejects.toMatchObject({ code: 'UPSTREAM_ERROR', status: 502 });
    honourRange = true;
    const rest = await client.fetchBlob(alpine, blobDigest, { offset: 4 });
    expect(rest?.size).toBe(6);
    const chunks: Buffer[] = [];
    for await (const chunk of rest?.body ?? []) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('456789');
  });
});
