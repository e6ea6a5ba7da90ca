// The registry API as clients see it: validation and error codes, Accept negotiation, HEAD, Range, tags, h2c.
import { readdir } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:http2';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { metricValue, startMirror, type TestMirror } from '../fixtures/mirror.js';
import { DOCKER_ACCEPT, getBlob, pull } from '../fixtures/puller.js';

let front: HubFront;
let mirror: TestMirror;

beforeAll(async () => {
  front = await startHubFront({ upstream: inject('registryUrl') });
  mirror = await startMirror(front.url);
});
afterAll(async () => {
  await mirror?.close();
  await front?.close();
});

/** A request with the path sent exactly as written (no client-side normalization of `..`). */
function raw(path: string, options: { method?: string; headers?: Record<string, string> } = {}) {
  const url = new URL(mirror.url);
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const code = (body: string) => (JSON.parse(body) as { errors: Array<{ code: string }> }).errors[0]?.code;
const hex64 = 'a'.repeat(64);

describe('bad input', () => {
  it.each([
    ['/v2/Foo/manifests/latest', 400, 'NAME_INVALID'],
    ['/v2/a/../b/manifests/latest', 400, 'NAME_INVALID'],
    ['/v2/../../etc/manifests/latest', 400, 'NAME_INVALID'],
    ['/v2/evil.com/../x/manifests/latest', 400, 'NAME_INVALID'],
    ['/v2/%2e%2e/manifests/latest', 400, 'NAME_INVALID'],
    ['/v2/library/%2e%2e/blobs/sha256:' + hex64, 400, 'NAME_INVALID'],
    ['/v2/a%2fb/manifests/latest', 400, 'NAME_INVALID'],
    ['/v2/a\\b/manifests/latest', 400, 'NAME_INVALID'],
    ['/v2/a//b/manifests/latest', 400, 'NAME_INVALID'],
    ['/v2/' + 'a'.repeat(256) + '/manifests/latest', 400, 'NAME_INVALID'],
    ['/v2/alpine/manifests/-bad', 400, 'TAG_INVALID'],
    ['/v2/alpine/manifests/' + 't'.repeat(129), 400, 'TAG_INVALID'],
    ['/v2/alpine/manifests/sha256:xyz', 400, 'DIGEST_INVALID'],
    ['/v2/alpine/blobs/sha256:' + 'A'.repeat(64), 400, 'DIGEST_INVALID'],
    ['/v2/alpine/blobs/md5:' + 'a'.repeat(32), 400, 'DIGEST_INVALID'],
    ['/v2/alpine/blobs/..%2f..%2fetc%2fpasswd', 400, 'DIGEST_INVALID'],
    ['/v2/alpine/blobs/../../../etc/passwd', 404, 'NOT_FOUND'],
    ['/v2/alpine/blobs/uploads/', 405, 'UNSUPPORTED'],
    ['/v2/alpine', 404, 'NOT_FOUND'],
    ['/v2/alpine/manifests/latest?ns=ghcr.io', 404, 'NAME_UNKNOWN'],
  ])('GET %s answers %i %s without asking upstream', async (path, status, expected) => {
    front.reset();
    const response = await raw(path);
    expect(response.status).toBe(status);
    expect(code(response.body)).toBe(expected);
    expect(response.headers['content-type']).toBe('application/json');
    expect(front.requests).toEqual([]);
  });

  it.each(['PUT', 'POST', 'DELETE', 'PATCH'])('answers %s with 405 UNSUPPORTED', async (method) => {
    const response = await raw('/v2/library/alpine/manifests/latest', { method });
    expect(response.status).toBe(405);
    expect(code(response.body)).toBe('UNSUPPORTED');
  });

  it('answers an unsatisfiable or malformed Range with 416, and never writes outside the data directory', async () => {
    const layer = inject('images').user.platforms[0]?.layers[1] as { digest: string; size: number };
    expect(await getBlob(mirror.url, 'someuser/app', layer.digest)).toBe(layer.size);
    for (const range of [`bytes=${layer.size}-`, 'bytes=abc', 'bytes=9-3', 'bytes=']) {
      const response = await raw(`/v2/someuser/app/blobs/${layer.digest}`, { headers: { range } });
      expect(response.status).toBe(416);
      expect(code(response.body)).toBe('RANGE_INVALID');
      expect(response.headers['content-range']).toBe(`bytes */${layer.size}`);
    }
    // admin.sock: the running mirror's admin socket (issue 15), there by design.
    expect((await readdir(mirror.dataDir)).sort()).toEqual(['admin.sock', 'blobs', 'index', 'tmp']);
  });
});

describe('manifests', () => {
  it('hands an index only to a client that accepts one, and the right Docker-Content-Digest always', async () => {
    const image = inject('images').multi;
    const withIndex = await request(`${mirror.url}/v2/multi/manifests/1`, { headers: { accept: DOCKER_ACCEPT } });
    expect(withIndex.statusCode).toBe(200);
    expect(withIndex.headers['content-type']).toBe('application/vnd.oci.image.index.v1+json');
    expect(withIndex.headers['docker-content-digest']).toBe(image.digest);
    await withIndex.body.dump();

    // Same tag, a client that knows only single-image manifests: never the cached index.
    const schema2Only = await request(`${mirror.url}/v2/multi/manifests/1`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    const body = await schema2Only.body.text();
    expect(schema2Only.headers['content-type']).not.toMatch(/index|list/);
    expect(body).not.toContain('"manifests"');
  });

  it('answers HEAD by tag with upstream HEADs only, never a GET', async () => {
    const image = inject('images').schema2;
    front.reset();
    const head = await request(`${mirror.url}/v2/library/schema2/manifests/1`, { method: 'HEAD', headers: { accept: DOCKER_ACCEPT } });
    expect(head.statusCode).toBe(200);
    expect(head.headers['docker-content-digest']).toBe(image.digest);
    expect(Number(head.headers['content-length'])).toBe(image.size);
    await front.idle();
    expect(front.count({ kind: 'manifest', method: 'GET' })).toBe(0);
    expect(front.count({ kind: 'manifest', method: 'HEAD' })).toBe(1);
  });

  it('serves a manifest digest on /blobs/ with the manifest media type', async () => {
    const image = inject('images').multi;
    const platform = image.platforms[1] as { digest: string; mediaType: string };
    for (let i = 0; i < 2; i++) {
      const response = await request(`${mirror.url}/v2/library/multi/blobs/${platform.digest}`);
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toBe(platform.mediaType);
      expect(response.headers['docker-content-digest']).toBe(platform.digest);
      await response.body.dump();
    }
  });

  it('answers MANIFEST_UNKNOWN for a tag upstream does not have', async () => {
    const response = await raw('/v2/library/multi/manifests/nope', { headers: { accept: DOCKER_ACCEPT } });
    expect(response.status).toBe(404);
    expect(code(response.body)).toBe('MANIFEST_UNKNOWN');
  });
});

describe('blobs', () => {
  it('serves a base layer cached through one repository to another without an upstream fetch', async () => {
    await pull(mirror.url, 'library/schema2', '1');
    const base = inject('images').user.platforms[0]?.layers[0]?.digest as string;
    front.reset();
    await pull(mirror.url, 'someuser/app', 'v1');
    await front.idle();
    expect(front.count({ kind: 'blob', pathIncludes: base })).toBe(0);
    expect(front.count({ kind: 'blob', method: 'GET' })).toBe(1); // only the app's own layer
  });

  it('serves cached blobs with length, digest, ETag, Accept-Ranges and single ranges', async () => {
    const layer = inject('images').schema2.platforms[0]?.layers[0] as { digest: string; size: number };
    await getBlob(mirror.url, 'library/schema2', layer.digest);
    const full = await request(`${mirror.url}/v2/library/schema2/blobs/${layer.digest}`, { method: 'HEAD' });
    expect(full.headers).toMatchObject({
      'content-length': String(layer.size),
      'docker-content-digest': layer.digest,
      etag: `"${layer.digest}"`,
      'accept-ranges': 'bytes',
    });
    const part = await request(`${mirror.url}/v2/library/schema2/blobs/${layer.digest}`, { headers: { range: 'bytes=-10' } });
    expect(part.statusCode).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes ${layer.size - 10}-${layer.size - 1}/${layer.size}`);
    expect((await part.body.arrayBuffer()).byteLength).toBe(10);
  });

  it('answers BLOB_UNKNOWN for a digest upstream does not have', async () => {
    const response = await raw(`/v2/library/multi/blobs/sha256:${hex64}`);
    expect(response.status).toBe(404);
    expect(code(response.body)).toBe('BLOB_UNKNOWN');
  });
});

describe('the rest of the API', () => {
  it('answers /v2/ with the API version header, over HTTP/1.1 and HTTP/2 alike', async () => {
    const v1 = await raw('/v2/');
    expect(v1.status).toBe(200);
    expect(v1.headers['docker-distribution-api-version']).toBe('registry/2.0');
    const session = connect(mirror.url);
    const status = await new Promise<number>((resolve, reject) => {
      const stream = session.request({ ':path': '/v2/library/multi/manifests/1', accept: DOCKER_ACCEPT });
      stream.on('response', (headers) => resolve(Number(headers[':status'])));
      stream.on('error', reject);
      stream.resume();
    });
    session.close();
    expect(status).toBe(200);
  });

  it('passes tags/list with n and last through to upstream', async () => {
    const response = await request(`${mirror.url}/v2/library/multi/tags/list?n=10`);
    expect(response.statusCode).toBe(200);
    expect(await response.body.json()).toEqual({ name: 'library/multi', tags: ['1'] });
  });

  it('exports hits, misses and bytes by source in /metrics', async () => {
    const text = await (await request(`${mirror.url}/metrics`)).body.text();
    expect(metricValue(text, 'regmirror_cache_requests_total', { kind: 'blob', result: 'hit' })).toBeGreaterThan(0);
    expect(metricValue(text, 'regmirror_cache_requests_total', { kind: 'blob', result: 'miss' })).toBeGreaterThan(0);
    expect(metricValue(text, 'regmirror_served_bytes_total', { source: 'upstream' })).toBeGreaterThan(0);
    expect(metricValue(text, 'regmirror_upstream_requests_total', { kind: 'blob', method: 'GET', status: '200' })).toBeGreaterThan(0);
  });
});

describe('the access log', () => {
  it('writes one line per request with the query, status, bytes sent and cache result', async () => {
    const logLines: string[] = [];
    const logged = await startMirror(front.url, { logLines });
    try {
      const image = inject('images').schema2;
      const path = `/v2/library/schema2/manifests/1?ns=docker.io`;
      const get = await request(`${logged.url}${path}`, { headers: { accept: DOCKER_ACCEPT } });
      await get.body.dump();
      const head = await request(`${logged.url}${path}`, { method: 'HEAD', headers: { accept: DOCKER_ACCEPT } });
      await head.body.dump();
      const requests = logLines
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((entry) => entry.msg === 'request');
      expect(requests).toHaveLength(2);
      expect(requests[0]).toMatchObject({ method: 'GET', query: '?ns=docker.io', status: 200, bytes: image.size, cache: 'miss' });
      expect(requests[1]).toMatchObject({ method: 'HEAD', status: 200, bytes: 0, cache: 'hit' });
      expect(typeof requests[0]?.reqId).toBe('number');
      expect(requests[0]?.reqId).not.toBe(requests[1]?.reqId);
    } finally {
      await logged.close();
    }
  });
});

describe('error answers in the log and metrics', () => {
  const layer = () => inject('images').user.platforms[0]?.layers[1] as { digest: string; size: number };

  it('counts a refused Range once, as an error', async () => {
    expect(await getBlob(mirror.url, 'someuser/app', layer().digest)).toBe(layer().size);
    const blobRequests = (text: string, result?: string) => metricValue(text, 'regmirror_cache_requests_total', { kind: 'blob', ...(result ? { result } : {}) });
    const before = await mirror.metrics();
    const refused = await request(`${mirror.url}/v2/someuser/app/blobs/${layer().digest}`, { headers: { range: `bytes=${layer().size}-` } });
    await refused.body.dump();
    expect(refused.statusCode).toBe(416);
    const after = await mirror.metrics();
    expect(blobRequests(after) - blobRequests(before)).toBe(1);
    expect(blobRequests(after, 'error') - blobRequests(before, 'error')).toBe(1);
  });

  it('logs the bytes of an error body', async () => {
    const logLines: string[] = [];
    const logged = await startMirror(front.url, { logLines });
    try {
      expect(await getBlob(logged.url, 'someuser/app', layer().digest)).toBe(layer().size);
      const refused = await request(`${logged.url}/v2/someuser/app/blobs/${layer().digest}`, { headers: { range: `bytes=${layer().size}-` } });
      const refusedBody = await refused.body.text();
      const missing = await request(`${logged.url}/v2/library/nothing-here/manifests/1`, { headers: { accept: DOCKER_ACCEPT } });
      const missingBody = await missing.body.text();
      expect([refused.statusCode, missing.statusCode]).toEqual([416, 404]);
      expect(Buffer.byteLength(refusedBody)).toBeGreaterThan(0);
      const errors = logLines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((e) => e.msg === 'request' && Number(e.status) >= 400);
      expect(errors.map((e) => [e.status, e.bytes])).toEqual([
        [416, Buffer.byteLength(refusedBody)],
        [404, Buffer.byteLength(missingBody)],
      ]);
    } finally {
      await logged.close();
    }
  });
});

describe('health', () => {
  it('answers /healthz, and /readyz with the index, the data directory and the upstream breaker', async () => {
    expect((await raw('/healthz')).status).toBe(200);
    const ready = await raw('/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ ready: true, index: 'open', dataDirWritable: true, upstream: { breaker: 'closed' } });
  });
});
