// Proves the hub front behaves like Docker Hub when asked (token auth, pull accounting, CDN redirects, slow answers,
// a refused port), driven with plain undici requests and no regmirror, so the Docker Hub tests rest on a checked fixture.
import { Agent, request, type Dispatcher } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { DOCKER_MANIFEST, sha256 } from '../fixtures/images.js';

const registryUrl = inject('registryUrl');
const image = inject('images').user; // someuser/app:v1, schema2
const layer = image.platforms[0]?.layers[1]; // the 2 MiB top layer
if (!layer) throw new Error('unexpected test image set');
const manifestPath = `/v2/${image.repo}/manifests/${image.tag}`;
const blobPath = `/v2/${image.repo}/blobs/${layer.digest}`;
const USERS = { alice: 's3cret-token' };
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

const client = new Agent({ keepAliveTimeout: 10 });
afterAll(() => client.close());

async function call(url: string, o: { method?: Dispatcher.HttpMethod; headers?: Record<string, string>; signal?: AbortSignal } = {}) {
  const res = await request(url, { method: o.method ?? 'GET', headers: o.headers, signal: o.signal, dispatcher: client });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}
const header = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);
const errorCode = (body: Buffer) => (JSON.parse(body.toString('utf8')) as { errors: Array<{ code: string }> }).errors[0]?.code;

/** `Bearer realm="…",service="…",scope="…"` → its parameters (no parameter value here holds a quote). */
function challenge(raw: string | string[] | undefined): Record<string, string> {
  const text = header(raw) ?? '';
  expect(text).toMatch(/^Bearer /);
  const params: Record<string, string> = {};
  for (const [, name = '', value = ''] of text.matchAll(/(\w+)="([^"]*)"/g)) params[name] = value;
  return params;
}

async function getToken(front: HubFront, scope: string, authorization?: string): Promise<string> {
  const query = new URLSearchParams({ service: 'registry.test', scope });
  const res = await call(`${front.url}/token?${query.toString()}`, { headers: authorization ? { authorization } : {} });
  expect(res.status).toBe(200);
  return (JSON.parse(res.body.toString('utf8')) as { token: string }).token;
}
const pullScope = (repo: string) => `repository:${repo}:pull`;
const bearer = (token: string) => ({ authorization: `Bearer ${token}`, accept: DOCKER_MANIFEST });

describe('token auth', () => {
  let front: HubFront;
  beforeAll(async () => {
    front = await startHubFront({ upstream: registryUrl, auth: { users: USERS } });
  });
  afterEach(() => front.reset());
  afterAll(() => front.close());

  it('challenges /v2/ without a scope and a repository path with its pull scope, with a registry UNAUTHORIZED body', async () => {
    const base = await call(`${front.url}/v2/`);
    expect(base.status).toBe(401);
    expect(challenge(base.headers['www-authenticate'])).toEqual({ realm: `${front.url}/token`, service: 'registry.test' });
    const manifest = await call(`${front.url}${manifestPath}`, { headers: { accept: DOCKER_MANIFEST } });
    expect(manifest.status).toBe(401);
    expect(challenge(manifest.headers['www-authenticate'])).toEqual({
      realm: `${front.url}/token`,
      service: 'registry.test',
      scope: pullScope(image.repo),
    });
    expect(errorCode(manifest.body)).toBe('UNAUTHORIZED');
  });

  it('issues an anonymous token for the challenged scope that opens the manifest', async () => {
    const first = await call(`${front.url}${manifestPath}`, { headers: { accept: DOCKER_MANIFEST } });
    const { realm = '', service = '', scope = '' } = challenge(first.headers['www-authenticate']);
    const reply = await call(`${realm}?${new URLSearchParams({ service, scope }).toString()}`);
    expect(reply.status).toBe(200);
    const body = JSON.parse(reply.body.toString('utf8')) as { token: string; access_token: string; expires_in: number; issued_at: string };
    expect(body).toMatchObject({ access_token: body.token, expires_in: 300 });
    expect(Date.parse(body.issued_at)).toBeGreaterThan(Date.now() - 60_000);

    const second = await call(`${front.url}${manifestPath}`, { headers: bearer(body.token) });
    expect(second.status).toBe(200);
    expect(sha256(second.body)).toBe(image.digest);
    expect(front.tokensIssued).toEqual([{ user: 'anonymous', scope }]);
    await front.idle();
    expect(front.requests.map((r) => [r.kind, r.status, r.user])).toEqual([
      ['manifest', 401, undefined],
      ['token', 200, 'anonymous'],
      ['manifest', 200, 'anonymous'],
    ]);
  });

  it('refuses a token for one repository on another with a challenge for the other', async () => {
    const token = await getToken(front, pullScope(image.repo));
    const other = await call(`${front.url}/v2/library/multi/manifests/1`, { headers: bearer(token) });
    expect(other.status).toBe(401);
    expect(challenge(other.headers['www-authenticate']).scope).toBe(pullScope('library/multi'));
    expect((await call(`${front.url}/v2/`, { headers: bearer(token) })).status).toBe(200); // any valid token opens /v2/
  });

  it('binds Basic credentials to their user, and refuses a wrong password or an unknown user', async () => {
    const good = basic('alice', USERS.alice);
    const token = await getToken(front, pullScope(image.repo), good);
    expect((await call(`${front.url}${manifestPath}`, { headers: bearer(token) })).status).toBe(200);
    const query = new URLSearchParams({ service: 'registry.test', scope: pullScope(image.repo) }).toString();
    for (const wrong of [basic('alice', 'guess'), basic('mallory', USERS.alice)]) {
      const refused = await call(`${front.url}/token?${query}`, { headers: { authorization: wrong } });
      expect(refused.status).toBe(401);
      expect(JSON.parse(refused.body.toString('utf8'))).toEqual({ details: 'incorrect username or password' });
    }
    await front.idle();
    expect(front.tokensIssued).toEqual([{ user: 'alice', scope: pullScope(image.repo) }]);
    expect(front.requests.filter((r) => r.kind === 'token').map((r) => [r.status, r.user])).toEqual([
      [200, 'alice'],
      [401, 'alice'],
      [401, 'mallory'],
    ]);
    expect(front.requests.find((r) => r.kind === 'manifest')?.user).toBe('alice');
    // The password went to /token only; /v2/ saw the bearer token.
    expect(front.authorizationHeadersSeen).toEqual([good, `Bearer ${token}`, basic('alice', 'guess'), basic('mallory', USERS.alice)]);
  });

  it('turns a token into a 401 after expireTokens(), and after tokenTtlSeconds', async () => {
    const token = await getToken(front, pullScope(image.repo));
    expect((await call(`${front.url}${manifestPath}`, { headers: bearer(token) })).status).toBe(200);
    front.expireTokens();
    expect((await call(`${front.url}${manifestPath}`, { headers: bearer(token) })).status).toBe(401);

    let now = Date.now();
    const short = await startHubFront({ upstream: registryUrl, auth: { tokenTtlSeconds: 1, now: () => now } });
    try {
      const brief = await getToken(short, pullScope(image.repo));
      expect((await call(`${short.url}${manifestPath}`, { headers: bearer(brief) })).status).toBe(200);
      now += 1_100;
      expect((await call(`${short.url}${manifestPath}`, { headers: bearer(brief) })).status).toBe(401);
    } finally {
      await short.close();
    }
  });
});

describe('pull accounting', () => {
  let front: HubFront;
  const url = () => `${front.url}${manifestPath}`;
  const accept = { accept: DOCKER_MANIFEST };
  beforeAll(async () => {
    front = await startHubFront({ upstream: registryUrl, rateLimit: { limit: 3, windowSeconds: 60 } });
  });
  afterEach(() => front.reset());
  afterAll(() => front.close());

  it('counts manifest GETs only, and refuses the 4th with 429 TOOMANYREQUESTS, Retry-After and the limit headers', async () => {
    for (let i = 0; i < 5; i++) {
      const head = await call(url(), { method: 'HEAD', headers: accept });
      expect(head.status).toBe(200);
      expect(head.headers['ratelimit-remaining']).toBe('3;w=60');
    }
    expect((await call(`${front.url}${blobPath}`)).status).toBe(200);
    expect(front.pulls()).toBe(0);

    const remaining: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      const get = await call(url(), { headers: accept });
      expect(get.status).toBe(200);
      expect(get.headers).toMatchObject({ 'ratelimit-limit': '3;w=60', 'docker-ratelimit-source': '127.0.0.1' });
      remaining.push(get.headers['ratelimit-remaining']);
    }
    expect(remaining).toEqual(['2;w=60', '1;w=60', '0;w=60']);

    const refused = await call(url(), { headers: accept });
    expect(refused.status).toBe(429);
    expect(errorCode(refused.body)).toBe('TOOMANYREQUESTS');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(59);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(refused.headers).toMatchObject({ 'ratelimit-limit': '3;w=60', 'ratelimit-remaining': '0;w=60', 'docker-ratelimit-source': '127.0.0.1' });
    expect(front.lastRateLimitHeaders).toEqual({ limit: '3;w=60', remaining: '0;w=60', source: '127.0.0.1' });
    expect(front.pulls()).toBe(3); // the refused GET did not count
    expect(front.pulls('127.0.0.1')).toBe(3);
    expect((await call(url(), { method: 'HEAD', headers: accept })).status).toBe(200); // HEAD still answers

    front.resetPulls();
    expect((await call(url(), { headers: accept })).status).toBe(200);
    expect(front.pulls()).toBe(1);
  });

  it('counts an authenticated user apart from the anonymous address', async () => {
    const hub = await startHubFront({ upstream: registryUrl, auth: { users: USERS }, rateLimit: { limit: 1, windowSeconds: 60 } });
    try {
      const anonymous = await getToken(hub, pullScope(image.repo));
      const alice = await getToken(hub, pullScope(image.repo), basic('alice', USERS.alice));
      const pull = (token: string) => call(`${hub.url}${manifestPath}`, { headers: bearer(token) });
      const a = await pull(anonymous);
      expect([a.status, a.headers['docker-ratelimit-source']]).toEqual([200, '127.0.0.1']);
      const b = await pull(alice);
      expect([b.status, b.headers['docker-ratelimit-source']]).toEqual([200, 'alice']);
      expect((await pull(anonymous)).status).toBe(429);
      expect([hub.pulls('alice'), hub.pulls('127.0.0.1'), hub.pulls()]).toEqual([1, 1, 2]);
      // Without a token the 401 comes first and nothing is counted.
      expect((await call(`${hub.url}${manifestPath}`, { headers: accept })).status).toBe(401);
      expect(hub.pulls()).toBe(2);
    } finally {
      await hub.close();
    }
  });
});

describe('CDN redirects', () => {
  let front: HubFront;
  let token: string;
  beforeAll(async () => {
    front = await startHubFront({ upstream: registryUrl, auth: { users: USERS }, cdn: true });
    token = await getToken(front, pullScope(image.repo));
    front.reset();
  });
  afterEach(() => front.reset());
  afterAll(() => front.close());

  /** The front's 307 for the layer, asked with a valid token as a client would. */
  async function redirect(method: Dispatcher.HttpMethod = 'GET'): Promise<URL> {
    const res = await call(`${front.url}${blobPath}`, { method, headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(307);
    return new URL(header(res.headers.location) ?? '');
  }

  it('answers a blob GET with 307 to a signed CDN URL that serves the exact bytes without Authorization', async () => {
    const location = await redirect();
    expect(location.origin).toBe(front.cdnUrl);
    expect(location.origin).not.toBe(front.url);
    expect(location.pathname).toBe(`/blobs/${layer.digest}`);
    expect(location.searchParams.get('repo')).toBe(image.repo);
    expect(Number(location.searchParams.get('expires'))).toBeGreaterThan(Date.now());
    const res = await call(location.href);
    expect(res.status).toBe(200);
    expect(res.headers['docker-content-digest']).toBeUndefined(); // a CDN knows nothing of registries
    expect(sha256(res.body)).toBe(layer.digest);
    await front.idle();
    expect(front.requests.map((r) => [r.kind, r.method, r.status])).toEqual([
      ['blob', 'GET', 307],
      ['cdn', 'GET', 200],
    ]);
    expect(front.requests[1]).toMatchObject({ path: `/blobs/${layer.digest}`, bytes: layer.size });
    expect(front.cdnAuthorizationViolations).toBe(0);
  });

  it('answers 400 to a CDN request with Authorization and counts the violation', async () => {
    const location = await redirect();
    const res = await call(location.href, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(400);
    expect(front.cdnAuthorizationViolations).toBe(1);
  });

  it('refuses a tampered signature, a changed repo, an expired or unsigned URL with 403', async () => {
    const location = await redirect();
    const sig = location.searchParams.get('sig') ?? '';
    const variants: Array<Record<string, string>> = [
      { sig: `${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}` },
      { repo: 'library/multi' },
      { expires: String(Date.now() - 1) },
      { sig: '' },
    ];
    for (const change of variants) {
      const tampered = new URL(location);
      for (const [name, value] of Object.entries(change)) tampered.searchParams.set(name, value);
      expect((await call(tampered.href)).status).toBe(403);
    }
    expect((await call(location.href)).status).toBe(200);
  });

  it('redirects a blob HEAD too; the CDN answers HEAD with the length and honours Range', async () => {
    const location = await redirect('HEAD');
    const head = await call(location.href, { method: 'HEAD' });
    expect([head.status, head.headers['content-length']]).toEqual([200, String(layer.size)]);
    const range = await call(location.href, { headers: { range: 'bytes=100-199' } });
    expect([range.status, range.body.length, range.headers['content-range']]).toEqual([206, 100, `bytes 100-199/${layer.size}`]);
  });

  it('applies a body fault on the side that streams the bytes, and answers an unknown blob itself', async () => {
    front.setFault({ kind: 'corrupt', atByte: 1_000, path: new RegExp(layer.digest), times: 1 });
    const location = await redirect(); // the redirect has no body, so it leaves the fault for the CDN
    const corrupted = await call(location.href);
    expect(corrupted.body.length).toBe(layer.size);
    expect(sha256(corrupted.body)).not.toBe(layer.digest);
    expect(sha256((await call(location.href)).body)).toBe(layer.digest); // times: 1 used up

    const unknown = await call(`${front.url}/v2/${image.repo}/blobs/sha256:${'0'.repeat(64)}`, { headers: { authorization: `Bearer ${token}` } });
    expect(unknown.status).toBe(404);
    expect(errorCode(unknown.body)).toBe('BLOB_UNKNOWN');
  });
});

describe('outages', () => {
  let front: HubFront;
  beforeAll(async () => {
    front = await startHubFront({ upstream: registryUrl });
  });
  afterEach(async () => {
    await front.setDown(false);
    front.reset();
  });
  afterAll(() => front.close());

  it('slow: holds the response headers back for ms, then answers normally', async () => {
    front.setFault({ kind: 'slow', ms: 400, path: /\/manifests\//, times: 1 });
    const started = performance.now();
    const res = await call(`${front.url}${manifestPath}`, { headers: { accept: DOCKER_MANIFEST } });
    expect(res.status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(390);
  });

  it('slow: stops waiting when the client gives up', async () => {
    front.setFault({ kind: 'slow', ms: 30_000, path: /\/manifests\// });
    await expect(call(`${front.url}${manifestPath}`, { signal: AbortSignal.timeout(200) })).rejects.toThrow();
    await front.idle(2_000); // the front's own wait ended with the client, long before 30 s
    expect(front.requests[0]).toMatchObject({ status: 0, done: true });
  });

  it('setDown(true) refuses connections; setDown(false) serves again on the same port', async () => {
    const port = front.port;
    expect((await call(`${front.url}/v2/`)).status).toBe(200); // a keep-alive connection the outage must also cut
    await front.setDown(true);
    // A fresh dispatcher, so the refusal is the connect itself and not a pooled socket's reset.
    const fresh = new Agent({ keepAliveTimeout: 10 });
    try {
      await expect(request(`${front.url}/v2/`, { dispatcher: fresh })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    } finally {
      await fresh.close();
    }
    await expect(call(`${front.url}/v2/`)).rejects.toThrow();
    await front.setDown(false);
    expect(front.port).toBe(port);
    expect((await call(`${front.url}/v2/`)).status).toBe(200);
  });
});
