// Issue 14, findings 4, 7 and 8: the token cache stays bounded and drops expired tokens, a bad 401 challenge
// poisons nothing, and Basic credentials reach only the upstream's exact origin, a listed realm or Docker Hub's.
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import { OCI_MANIFEST } from '../../src/registry/media-types.js';
import { parseRepository } from '../../src/registry/reference.js';
import { realmTrusted, TokenCache } from '../../src/upstream/auth.js';
import type { RegistryClient } from '../../src/upstream/client.js';
import { BearerRealm } from '../faults/bearer.js';
import { sampleManifest, TestClock, testClient } from '../faults/client.js';
import { startFaultServer, type FaultServer } from '../faults/server.js';

const alpine = parseRepository('library/alpine');
const accept = { accept: OCI_MANIFEST };
const manifest = sampleManifest();
const basic = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;

const servers: FaultServer[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function server(handler: Parameters<typeof startFaultServer>[0]): Promise<FaultServer> {
  const started = await startFaultServer(handler);
  servers.push(started);
  return started;
}

function clientOf(url: string, upstream: Parameters<typeof testClient>[2] = {}, clock = new TestClock()): RegistryClient {
  const client = testClient(url, clock, upstream);
  closers.push(() => client.close());
  return client;
}

describe('the token cache (finding 4)', () => {
  it('keeps at most maxEntries tokens for 40,000 distinct scopes, and drops expired ones', async () => {
    const token = 'x'.repeat(2048);
    const realm = await server((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token, expires_in: 300 }));
    });
    const agent = new Agent({ connections: 8 });
    closers.push(() => agent.close());
    const clock = new TestClock();
    const cache = new TokenCache(agent, { upstream: realm.url, now: clock.now, limits: { maxEntries: 1000, maxBytes: 64 * 2 ** 20 } });
    const challenge = `Bearer realm="${realm.url}/token",service="s"`;
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 40_000; i += 200) {
      await Promise.all(Array.from({ length: 200 }, (_, j) => cache.renew(`repository:r${i + j}:pull`, challenge)));
    }
    const grown = process.memoryUsage().heapUsed - before;
    console.log(`finding 4: 40,000 scopes → ${cache.tokens.size} tokens, ${cache.tokens.bytes} bytes held, heap +${Math.round(grown / 2 ** 20)} MiB`);
    expect(cache.tokens.size).toBe(1000);
    expect(cache.tokens.bytes).toBeLessThanOrEqual(1000 * 2 * (token.length + 64));

    // Expired tokens go: the oldest 1000 are past their lifetime, and one more insert after the sweep interval drops them.
    clock.advance(300_000);
    await cache.renew('repository:fresh:pull', challenge);
    expect(cache.tokens.size).toBe(1);
  }, 60_000);

  it('bounds the cache by total token bytes as well', async () => {
    const realm = await server((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token: 'y'.repeat(8192), expires_in: 300 }));
    });
    const agent = new Agent();
    closers.push(() => agent.close());
    const cache = new TokenCache(agent, { upstream: realm.url, limits: { maxEntries: 10_000, maxBytes: 1 * 2 ** 20 } });
    for (let i = 0; i < 200; i++) await cache.renew(`repository:r${i}:pull`, `Bearer realm="${realm.url}/token"`);
    expect(cache.tokens.bytes).toBeLessThanOrEqual(2 ** 20);
    expect(cache.tokens.size).toBeLessThan(64);
  });
});

describe('challenges (finding 7)', () => {
  it('survives one challenge with realm="not a url": later requests get tokens from the good realm', async () => {
    const realm = new BearerRealm();
    let bad = 1;
    const registry = await server((req, res) => {
      if (realm.token(req, res)) return;
      if (bad > 0 && !req.headers.authorization) {
        bad--;
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="not a url",service="x"' });
        res.end();
        return;
      }
      if (realm.challenge(req, res)) return;
      res.writeHead(200, { 'content-type': manifest.mediaType, 'docker-content-digest': manifest.digest });
      res.end(manifest.bytes);
    });
    const client = clientOf(registry.url);
    await expect(client.fetchManifest(alpine, 'latest', accept)).rejects.toThrow();
    expect((await client.fetchManifest(alpine, 'latest', accept))?.digest).toBe(manifest.digest);
    expect((await client.fetchManifest(parseRepository('library/busybox'), 'latest', accept))?.digest).toBe(manifest.digest);
    expect(realm.issued).toHaveLength(2);
  });

  it('keeps the challenge that works when a later 401 names a bad realm', async () => {
    const realm = new BearerRealm();
    let bad = false;
    const registry = await server((req, res) => {
      if (realm.token(req, res)) return;
      if (bad) {
        bad = false;
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="file:///etc/passwd"' });
        res.end();
        return;
      }
      if (realm.challenge(req, res)) return;
      res.writeHead(200, { 'content-type': manifest.mediaType, 'docker-content-digest': manifest.digest });
      res.end(manifest.bytes);
    });
    const client = clientOf(registry.url);
    await client.fetchManifest(alpine, 'latest', accept);
    bad = true;
    await expect(client.fetchManifest(alpine, 'latest', accept)).rejects.toMatchObject({ status: 502 });
    registry.requests.length = 0;
    expect((await client.fetchManifest(parseRepository('library/busybox'), 'latest', accept))?.digest).toBe(manifest.digest);
    expect(registry.requests.map((r) => r.url.split('?')[0])).toEqual(['/token', '/v2/library/busybox/manifests/latest']);
  });

  it('never asks a file: realm', async () => {
    const registry = await server((req, res) => {
      res.writeHead(401, { 'www-authenticate': 'Bearer realm="file:///etc/passwd"' });
      res.end();
    });
    const client = clientOf(registry.url);
    await expect(client.fetchManifest(alpine, 'latest', accept)).rejects.toMatchObject({ code: 'UPSTREAM_ERROR', status: 502 });
  });
});

describe('where credentials go (finding 8)', () => {
  it('sends no credentials to a realm on the same IP but another port', async () => {
    const realm = new BearerRealm();
    const tokens = await server((req, res) => void realm.token(req, res));
    const registry = await server((req, res) => {
      if (req.headers.authorization !== 'Bearer t1') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokens.url}/token",service="s"` });
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': manifest.mediaType, 'docker-content-digest': manifest.digest });
      res.end(manifest.bytes);
    });
    const client = clientOf(registry.url, { credentials: { username: 'alice', password: 's3cret' } });
    expect((await client.fetchManifest(alpine, 'latest', accept))?.digest).toBe(manifest.digest);
    expect(realm.issued.map((t) => t.authorization)).toEqual([undefined]);
  });

  it('sends them to that port once it is listed in authRealms', async () => {
    const realm = new BearerRealm();
    const tokens = await server((req, res) => void realm.token(req, res));
    const registry = await server((req, res) => {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokens.url}/token",service="s"` });
      res.end();
    });
    const host = new URL(tokens.url).host;
    const client = clientOf(registry.url, { credentials: { username: 'alice', password: 's3cret' }, authRealms: [host] });
    await expect(client.fetchManifest(alpine, 'latest', accept)).rejects.toMatchObject({ status: 401 });
    expect(realm.issued.map((t) => t.authorization)).toEqual([basic]);
  });

  it('trusts no public suffix shared with strangers, and keeps Docker Hub working', () => {
    expect(realmTrusted(new URL('https://evil.co.uk/token'), { upstream: 'https://registry.x.co.uk' })).toBe(false);
    expect(realmTrusted(new URL('https://auth.co.uk/token'), { upstream: 'https://x.co.uk' })).toBe(false);
    expect(realmTrusted(new URL('https://other.azurecr.io/oauth2/token'), { upstream: 'https://mine.azurecr.io' })).toBe(false);
    expect(realmTrusted(new URL('https://registry.x.co.uk:8443/token'), { upstream: 'https://registry.x.co.uk' })).toBe(false);
    expect(realmTrusted(new URL('https://auth.docker.io/token'), { upstream: 'https://registry-1.docker.io' })).toBe(true);
    expect(realmTrusted(new URL('https://auth.docker.io/token'), { upstream: 'https://registry-1.docker.io:443' })).toBe(true);
    expect(realmTrusted(new URL('https://auth.docker.io:8443/token'), { upstream: 'https://registry-1.docker.io' })).toBe(false);
  });
});

describe('a token request shared by several clients (finding 6)', () => {
  it('is not failed for the others when the client that started it hangs up', async () => {
    const realm = new BearerRealm();
    let release = () => {};
    const slow = new Promise<void>((resolve) => (release = resolve));
    const registry = await server(async (req, res) => {
      if (req.url?.startsWith('/token')) await slow;
      if (realm.token(req, res) || realm.challenge(req, res)) return;
      res.writeHead(200, { 'content-type': manifest.mediaType, 'docker-content-digest': manifest.digest });
      res.end(manifest.bytes);
    });
    const client = clientOf(registry.url);
    const gone = new AbortController();
    const first = client.fetchManifest(alpine, 'latest', { ...accept, signal: gone.signal });
    const second = client.fetchManifest(alpine, 'latest', accept);
    await expect.poll(() => registry.requests.filter((r) => r.url.startsWith('/token')).length).toBe(1);
    gone.abort();
    await expect(first).rejects.toThrow();
    release();
    expect((await second)?.digest).toBe(manifest.digest);
  });
});
