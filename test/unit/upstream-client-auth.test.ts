// The upstream client's credentials: bearer tokens per repository scope (challenge, reuse, renewal on 401 and by
// expiry), Basic credentials only to the token realm, and blob redirects that never carry the registry's token.
import { afterEach, describe, expect, it } from 'vitest';
import { OCI_MANIFEST } from '../../src/registry/media-types.js';
import { parseDigest, parseRepository } from '../../src/registry/reference.js';
import type { RegistryClient } from '../../src/upstream/client.js';
import { BearerRealm, SERVICE } from '../faults/bearer.js';
import { sampleManifest, TestClock, testClient } from '../faults/client.js';
import { startFaultServer, type FaultServer } from '../faults/server.js';

const alpine = parseRepository('library/alpine');
const busybox = parseRepository('library/busybox');
const accept = { accept: OCI_MANIFEST };
const manifest = sampleManifest();

const servers: FaultServer[] = [];
const clients: RegistryClient[] = [];
afterEach(async () => {
  // Servers first: dropping their connections fails any request still in flight, so the clients close at once.
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

function clientOf(server: FaultServer, clock = new TestClock(), upstream: Parameters<typeof testClient>[2] = {}): RegistryClient {
  const client = testClient(server.url, clock, upstream);
  clients.push(client);
  return client;
}

/** A registry behind token auth that serves `manifest` for any manifest path. */
async function tokenRegistry(realm: BearerRealm): Promise<FaultServer> {
  const server = await startFaultServer((req, res) => {
    if (realm.token(req, res) || realm.challenge(req, res)) return;
    res.writeHead(200, { 'content-type': manifest.mediaType, 'docker-content-digest': manifest.digest });
    res.end(manifest.bytes);
  });
  servers.push(server);
  return server;
}

/** What each request looked like: method, path without query, and its Authorization header. */
const seen = (server: FaultServer) => server.requests.map((r) => [r.method, r.url.split('?')[0], r.headers.authorization]);

describe('bearer tokens', () => {
  it('answers a 401 challenge with a token from the realm, reuses it, and renews it after the next 401', async () => {
    const realm = new BearerRealm();
    const server = await tokenRegistry(realm);
    const client = clientOf(server);

    expect((await client.fetchManifest(alpine, 'latest', accept))?.digest).toBe(manifest.digest);
    expect(realm.issued).toEqual([{ token: 't1', scope: `repository:${alpine}:pull`, service: SERVICE, authorization: undefined }]);
    await client.fetchManifest(alpine, 'latest', accept);
    realm.expireAll();
    expect((await client.fetchManifest(alpine, 'latest', accept))?.digest).toBe(manifest.digest);

    expect(seen(server)).toEqual([
      ['GET', `/v2/${alpine}/manifests/latest`, undefined],
      ['GET', '/token', undefined],
      ['GET', `/v2/${alpine}/manifests/latest`, 'Bearer t1'],
      ['GET', `/v2/${alpine}/manifests/latest`, 'Bearer t1'], // reused: no new token, no 401
      ['GET', `/v2/${alpine}/manifests/latest`, 'Bearer t1'], // expired upstream: 401…
      ['GET', '/token', undefined], // …so a new one
      ['GET', `/v2/${alpine}/manifests/latest`, 'Bearer t2'],
    ]);
  });

  it('fetches a token for a new scope before its first request, once the challenge is known', async () => {
    const realm = new BearerRealm();
    const server = await tokenRegistry(realm);
    const client = clientOf(server);
    await client.resolveManifest(alpine, 'latest', accept);
    server.requests.length = 0;
    await client.resolveManifest(busybox, 'latest', accept);
    expect(seen(server)).toEqual([
      ['GET', '/token', undefined],
      ['HEAD', `/v2/${busybox}/manifests/latest`, 'Bearer t2'],
    ]);
    expect(realm.issued.map((t) => t.scope)).toEqual([`repository:${alpine}:pull`, `repository:${busybox}:pull`]);
  });

  it('renews a token shortly before its expires_in runs out, without waiting for a 401', async () => {
    const realm = new BearerRealm(60); // kept 30 s less than that, so none expires in flight
    const server = await tokenRegistry(realm);
    const clock = new TestClock();
    const client = clientOf(server, clock);
    await client.resolveManifest(alpine, 'latest', accept);
    clock.advance(29_000);
    await client.resolveManifest(alpine, 'latest', accept);
    expect(realm.issued).toHaveLength(1);
    clock.advance(2_000);
    server.requests.length = 0;
    await client.resolveManifest(alpine, 'latest', accept);
    expect(seen(server)).toEqual([
      ['GET', '/token', undefined],
      ['HEAD', `/v2/${alpine}/manifests/latest`, 'Bearer t2'],
    ]);
  });

  it('sends Basic credentials to the token realm only, never to /v2/', async () => {
    const realm = new BearerRealm();
    const server = await tokenRegistry(realm);
    const client = clientOf(server, undefined, { credentials: { username: 'alice', password: 's3cret' } });
    await client.fetchManifest(alpine, 'latest', accept);
    const basic = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
    expect(realm.issued.map((t) => t.authorization)).toEqual([basic]);
    const registryAuth = server.requests.filter((r) => r.url.startsWith('/v2/')).map((r) => r.headers.authorization);
    expect(registryAuth).toEqual([undefined, 'Bearer t1']);
  });
});

describe('blob redirects', () => {
  const blob = Buffer.from('layer bytes from the CDN');
  const digest = parseDigest(`sha256:${'b'.repeat(64)}`);

  it('follows a redirect to another origin without the registry token, and keeps the signed query', async () => {
    const cdn = await startFaultServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(blob.length) });
      res.end(blob);
    });
    servers.push(cdn);
    const realm = new BearerRealm();
    const registry = await startFaultServer((req, res) => {
      if (realm.token(req, res) || realm.challenge(req, res)) return;
      res.writeHead(307, { location: `${cdn.url}/blobs/${digest}?sig=abc&expires=1` });
      res.end();
    });
    servers.push(registry);
    const client = clientOf(registry, undefined, { credentials: { username: 'alice', password: 's3cret' } });

    const fetched = await client.fetchBlob(alpine, digest, {});
    const chunks: Buffer[] = [];
    for await (const chunk of fetched?.body ?? []) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks)).toEqual(blob);
    expect(fetched?.size).toBe(blob.length);
    expect(seen(registry).at(-1)).toEqual(['GET', `/v2/${alpine}/blobs/${digest}`, 'Bearer t1']);
    expect(cdn.requests.map((r) => [r.method, r.url, r.headers.authorization])).toEqual([
      ['GET', `/blobs/${digest}?sig=abc&expires=1`, undefined],
    ]);
  });

  it('refuses a redirect without a Location, and a chain of more than 5', async () => {
    let hops = 0;
    const server = await startFaultServer((req, res) => {
      if (req.url?.startsWith('/v2/nowhere/')) res.writeHead(302);
      else res.writeHead(302, { location: `/hop/${++hops}` });
      res.end();
    });
    servers.push(server);
    const client = clientOf(server);
    await expect(client.fetchBlob(parseRepository('nowhere/app'), digest, {})).rejects.toMatchObject({ code: 'UPSTREAM_ERROR', status: 502 });
    await expect(client.fetchBlob(alpine, digest, {})).rejects.toMatchObject({ code: 'UPSTREAM_ERROR', status: 502 });
    expect(hops).toBe(6); // the first answer and 5 redirects followed
  });
});
