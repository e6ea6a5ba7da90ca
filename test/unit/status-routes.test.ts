// The status page's routes on a real in-process mirror (its upstream unreachable: nothing here pulls): what is
// served where, read-only, 404 for what is not ours, the status.page switch, client auth, and no secret in the JSON.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openIndex } from '../../src/index/db.js';
import { LevelTagIndex } from '../../src/index/tag-index.js';
import type { Digest } from '../../src/registry/reference.js';
import { CSP } from '../../src/status/routes.js';
import { metricValue, startMirror, type TestMirror } from '../fixtures/mirror.js';

/** Nothing listens there: a pull would fail, the page must not need upstream. */
const NO_UPSTREAM = 'http://127.0.0.1:9';
const PASSWORD = 'upstream-password-not-for-the-page';
const TOKEN = 'admin-token-never-shown-0123456789';
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

let mirror: TestMirror | undefined;
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'regmirror-status-'));
  await writeFile(join(dir, 'htpasswd'), `alice:${bcrypt.hashSync('wonderland', 4)}\n`);
});
afterEach(async () => {
  await mirror?.close();
  mirror = undefined;
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function get(path: string, options: { method?: 'GET' | 'HEAD' | 'POST' | 'DELETE'; authorization?: string } = {}) {
  const response = await request(`${mirror?.url}${path}`, {
    method: options.method ?? 'GET',
    headers: options.authorization ? { authorization: options.authorization } : {},
  });
  const text = await response.body.text();
  return { status: response.statusCode, headers: response.headers, text };
}

describe('status routes', () => {
  it('serves the page under a strict CSP, its files from /ui/, and the JSON API, all read-only', async () => {
    mirror = await startMirror(NO_UPSTREAM);
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBe(CSP);
    expect(page.text).toContain('<script src="/ui/app.js" defer></script>');
    expect(page.text).not.toMatch(/<script>|https?:\/\//);
    expect((await get('/ui/app.js')).headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect((await get('/ui/style.css')).headers['content-type']).toBe('text/css; charset=utf-8');
    const head = await get('/', { method: 'HEAD' });
    expect([head.status, head.text]).toEqual([200, '']);
    const status = JSON.parse((await get('/api/v1/status')).text) as { requests: { hitRatio: unknown }; upstreams: Array<{ name: string; breaker: string }> };
    expect(status.requests.hitRatio).toBeNull();
    expect(status.upstreams).toMatchObject([{ name: 'docker.io', breaker: 'closed', pullsSpared: 0 }]);
    expect(JSON.parse((await get('/api/v1/images')).text)).toMatchObject({ images: [] });
    expect(JSON.parse((await get('/api/v1/history')).text)).toEqual({ intervalSeconds: 10, capacity: 360, points: [] });
    const post = await get('/api/v1/status', { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    expect(JSON.parse(post.text)).toMatchObject({ errors: [{ code: 'UNSUPPORTED' }] });
    expect((await get('/', { method: 'DELETE' })).status).toBe(405);
  });

  it('answers 404 with a registry error for unknown paths under /api/ and /ui/, and leaves /api/v1/admin/ to the admin API', async () => {
    mirror = await startMirror(NO_UPSTREAM);
    for (const path of ['/api/v1/nope', '/api/v2/status', '/api/', '/ui/nope.js', '/api/v1/admin/images', '/api/v1/admin']) {
      const answer = await get(path);
      expect([path, answer.status]).toEqual([path, 404]);
      expect(JSON.parse(answer.text)).toMatchObject({ errors: [{ code: 'NOT_FOUND' }] });
    }
    expect((await get('/api/v1/admin/gc', { method: 'POST' })).status).toBe(404);
  });

  it('counts pulls spared from start, at 0, in /metrics', async () => {
    mirror = await startMirror(NO_UPSTREAM);
    expect(await mirror.metrics()).toMatch(/^regmirror_pulls_spared_total\{registry="docker.io"\} 0$/m);
  });

  it('turns the page and /api/v1/ off with status.page: false (404), /v2/ and /metrics untouched', async () => {
    mirror = await startMirror(NO_UPSTREAM, { config: { status: { page: false } } });
    for (const path of ['/', '/api/v1/status', '/api/v1/images', '/ui/app.js']) expect([path, (await get(path)).status]).toEqual([path, 404]);
    expect((await get('/v2/')).status).toBe(200);
    expect((await get('/metrics')).status).toBe(200);
  });

  it('with client auth: 401 and a Basic challenge without credentials (a browser prompts), the page with a user of the htpasswd file', async () => {
    mirror = await startMirror(NO_UPSTREAM, { config: { auth: { htpasswd: join(dir, 'htpasswd'), anonymous: ['docker.io/*'] } } });
    for (const path of ['/', '/api/v1/status', '/api/v1/images', '/ui/app.js', '/api/v1/nope']) {
      const answer = await get(path);
      expect([path, answer.status]).toEqual([path, 401]);
      expect(answer.headers['www-authenticate']).toBe('Basic realm="regmirror"');
    }
    expect((await get('/', { authorization: basic('alice', 'wrong') })).status).toBe(401);
    const page = await get('/', { authorization: basic('alice', 'wonderland') });
    expect(page.status).toBe(200);
    expect(page.text).toContain('regmirror');
    const status = await get('/api/v1/status', { authorization: basic('alice', 'wonderland') });
    expect(JSON.parse(status.text)).toMatchObject({ config: { auth: { enabled: true } } });
  });

  it("with client auth: a user's images are the repositories that user may pull, not every team's", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'regmirror-status-data-'));
    const db = await openIndex(dataDir);
    const tags = new LevelTagIndex(db, 100);
    for (const repo of ['teama/app', 'teamb/secret']) {
      await tags.put({ upstream: 'docker.io', repo, tag: '1', acceptKey: 'any', digest: `sha256:${'a'.repeat(64)}` as Digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, checkedAt: 1 });
    }
    await db.close();
    mirror = await startMirror(NO_UPSTREAM, {
      dataDir,
      config: { auth: { htpasswd: join(dir, 'htpasswd'), authenticated: [], users: { alice: ['docker.io/teama/*'] } } },
    });
    const images = JSON.parse((await get('/api/v1/images', { authorization: basic('alice', 'wonderland') })).text) as { images: Array<{ name: string }> };
    expect(images.images.map((i) => i.name)).toEqual(['teama/app:1']);
    await mirror.close();
    mirror = undefined;
    await rm(dataDir, { recursive: true, force: true });
  });

  it('/api/v1/images is a page: ?limit= cuts, ?q= filters, ?sort= and ?order= order, server side, with total and matched', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'regmirror-status-data-'));
    const db = await openIndex(dataDir);
    const tags = new LevelTagIndex(db, 100);
    const names = ['team/web', 'team/api', 'other/db', 'team/cli', 'other/queue'];
    for (const [i, repo] of names.entries()) {
      const digest = `sha256:${String(i).repeat(64)}` as Digest;
      await tags.put({ upstream: 'docker.io', repo, tag: '1', acceptKey: 'any', digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, checkedAt: 1, pulledAt: 1000 + i, hits: 10 - i });
    }
    await db.close();
    mirror = await startMirror(NO_UPSTREAM, { dataDir });
    type Page = { total: number; matched: number; limit: number; images: Array<{ name: string; size: number; pulls: number }> };
    const page = async (query: string) => JSON.parse((await get(`/api/v1/images${query}`)).text) as Page;
    // Default: most recently pulled first, every row (fewer than the default limit).
    const all = await page('');
    expect([all.total, all.matched, all.limit]).toEqual([5, 5, 200]);
    expect(all.images.map((i) => i.name)).toEqual(['other/queue:1', 'team/cli:1', 'other/db:1', 'team/api:1', 'team/web:1']);
    expect(all.images[0]?.size).toBe(0); // nothing of it cached: the size counts what is stored
    const cut = await page('?limit=2&sort=name');
    expect([cut.total, cut.matched, cut.images.map((i) => i.name)]).toEqual([5, 5, ['other/db:1', 'other/queue:1']]);
    const filtered = await page('?q=TEAM&sort=pulls&order=asc&limit=2');
    expect([filtered.total, filtered.matched, filtered.images.map((i) => i.pulls)]).toEqual([5, 3, [7, 9]]);
    const bySize = await page('?sort=size&q=other');
    expect(bySize.images.map((i) => i.name)).toEqual(['other/db:1', 'other/queue:1']); // equal sizes: by name
    for (const bad of ['?limit=0', '?limit=5001', '?limit=2x', '?sort=nope', '?order=up']) {
      const answer = await get(`/api/v1/images${bad}`);
      expect([bad, answer.status]).toEqual([bad, 400]);
      expect(JSON.parse(answer.text)).toMatchObject({ errors: [{ code: 'BAD_REQUEST' }] });
    }
    await mirror.close();
    mirror = undefined;
    await rm(dataDir, { recursive: true, force: true });
  });

  it('never shows credentials, the htpasswd file or admin.token in the JSON', async () => {
    mirror = await startMirror(NO_UPSTREAM, {
      config: { upstream: { url: NO_UPSTREAM, credentials: { username: 'hubuser', password: PASSWORD } }, admin: { token: TOKEN } },
    });
    const text = (await get('/api/v1/status')).text;
    const status = JSON.parse(text) as { config: { registries: unknown[]; admin: unknown; listen: string } };
    // Where it really listens (the config said port 0).
    expect(`http://${status.config.listen}`).toBe(mirror.url);
    expect(status.config.registries).toEqual([{ name: 'docker.io', url: NO_UPSTREAM, offline: false, tagTtlSeconds: 3600, account: true, allow: null }]);
    expect(status.config.admin).toEqual({ socket: true, network: true });
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain('hubuser');
    expect(text).not.toContain(TOKEN);
    expect(metricValue(await mirror.metrics(), 'regmirror_cache_requests_total')).toBe(0);
  });
});
