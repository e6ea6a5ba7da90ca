// Issue 14, must-show 1: a mirror with `auth.htpasswd` answers as distribution's htpasswd mode does: 401 with a
// Basic challenge without (or with wrong) credentials, 200 with right ones, 403 DENIED outside a user's rules,
// 429 after too many failed logins; /metrics behind auth when asked, /healthz and /readyz always open.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { buildLayer, buildSchema2Image, pushImage, type TestImage } from '../fixtures/images.js';
import { startMirror, type TestMirror } from '../fixtures/mirror.js';
import { DOCKER_ACCEPT } from '../fixtures/puller.js';

let front: HubFront;
let mirror: TestMirror;
let image: TestImage;
let dir: string;

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const ALICE = basic('alice', 'wonderland');
const BOB = basic('bob', 'builder');

beforeAll(async () => {
  const registry = inject('registryUrl');
  const layer = await buildLayer({ sizeBytes: 4096, seed: 'client-auth' });
  image = await pushImage(registry, 'library/authbase', '1', buildSchema2Image({ os: 'linux', architecture: 'amd64', layers: [layer] }));
  front = await startHubFront({ upstream: registry });
  dir = await mkdtemp(join(tmpdir(), 'regmirror-client-auth-'));
  const htpasswd = join(dir, 'htpasswd');
  // As `htpasswd -B` writes them: $2y$.
  const line = (user: string, password: string) => `${user}:${bcrypt.hashSync(password, 5).replace(/^\$2b\$/, '$2y$')}`;
  await writeFile(htpasswd, `${line('alice', 'wonderland')}\n${line('bob', 'builder')}\n`);
  mirror = await startMirror(front.url, {
    config: { auth: { htpasswd, authenticated: [], users: { alice: ['docker.io/library/*'] }, metrics: true } },
  });
});
afterAll(async () => {
  await mirror?.close();
  await front?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function get(path: string, authorization?: string, headers: Record<string, string> = {}) {
  const res = await request(`${mirror.url}${path}`, {
    headers: { accept: DOCKER_ACCEPT, ...headers, ...(authorization ? { authorization } : {}) },
  });
  const text = await res.body.text();
  const code = res.statusCode >= 400 ? (JSON.parse(text) as { errors: Array<{ code: string }> }).errors[0]?.code : undefined;
  return { status: res.statusCode, headers: res.headers, code, text };
}

describe('a mirror with auth.htpasswd', () => {
  it('challenges an anonymous GET /v2/ with 401 UNAUTHORIZED and WWW-Authenticate: Basic realm="regmirror"', async () => {
    const res = await get('/v2/');
    expect(res.status).toBe(401);
    expect(res.code).toBe('UNAUTHORIZED');
    expect(res.headers['www-authenticate']).toBe('Basic realm="regmirror"');
    expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
  });

  it('answers a wrong password with 401 UNAUTHORIZED and the challenge, and the right one with 200', async () => {
    const wrong = await get('/v2/', basic('alice', 'looking-glass'));
    expect([wrong.status, wrong.code, wrong.headers['www-authenticate']]).toEqual([401, 'UNAUTHORIZED', 'Basic realm="regmirror"']);
    expect((await get('/v2/', ALICE)).status).toBe(200);
  });

  it('serves a user the manifest and blob of a repository in their rules, and never asks upstream for a refused one', async () => {
    front.reset();
    const manifest = await get('/v2/library/authbase/manifests/1', ALICE);
    expect(manifest.status).toBe(200);
    expect(manifest.headers['docker-content-digest']).toBe(image.digest);
    const layer = image.platforms[0]?.layers[0]?.digest ?? '';
    expect((await get(`/v2/library/authbase/blobs/${layer}`, ALICE)).status).toBe(200);
    // Anonymous, and bob (whose rules name nothing): refused before any cache or upstream work.
    await front.idle();
    const seen = front.requests.length;
    expect(await get('/v2/library/authbase/manifests/1')).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    expect(await get('/v2/library/authbase/manifests/1', BOB)).toMatchObject({ status: 403, code: 'DENIED' });
    expect(await get('/v2/ghcr.io/myorg/app/manifests/1', ALICE)).toMatchObject({ status: 404, code: 'NAME_UNKNOWN' });
    expect(await get('/v2/someuser/app/manifests/1', ALICE)).toMatchObject({ status: 403, code: 'DENIED' });
    await front.idle();
    expect(front.requests.length).toBe(seen);
  });

  it('keeps /healthz and /readyz open and puts /metrics behind auth (metrics: true)', async () => {
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);
    expect(await get('/metrics')).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    const metrics = await get('/metrics', BOB);
    expect(metrics.status).toBe(200);
    expect(metrics.text).toContain('regmirror_');
  });

  it('limits failed logins from one address: the 11th attempt in a minute gets 429 with Retry-After', async () => {
    // Its own address (127.0.0.2 is loopback too), so the other tests' logins are not limited.
    const agent = new Agent({ localAddress: '127.0.0.2', keepAliveTimeout: 10 });
    try {
      const attempt = async (authorization: string) => {
        const res = await request(`${mirror.url}/v2/`, { headers: { authorization }, dispatcher: agent });
        await res.body.dump();
        return { status: res.statusCode, retryAfter: res.headers['retry-after'] };
      };
      const failures: number[] = [];
      for (let i = 0; i < 10; i++) failures.push((await attempt(basic('alice', `guess-${i}`))).status);
      expect(failures).toEqual(Array.from({ length: 10 }, () => 401));
      const limited = await attempt(ALICE);
      expect(limited.status).toBe(429);
      expect(Number(limited.retryAfter)).toBeGreaterThan(0);
      expect(Number(limited.retryAfter)).toBeLessThanOrEqual(60);
      // Another address still logs in.
      expect((await get('/v2/', ALICE)).status).toBe(200);
    } finally {
      await agent.close();
    }
  });
});
