// Client authentication's decisions (issue 14): who may pull what, the answers distribution's htpasswd mode gives
// (401 + Basic challenge, 403 DENIED), one bcrypt per header for a whole pull, and the failed-login limit.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { ClientAuth, compilePattern, type AuthTarget } from '../../src/http/client-auth.js';
import type { RequestContext } from '../../src/http/context.js';
import { Htpasswd } from '../../src/http/htpasswd.js';
import { RegistryError } from '../../src/registry/errors.js';

const log = pino({ level: 'silent' });
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const repo = (registry: string, name: string): AuthTarget => ({ kind: 'repository', registry, repo: name });
const NGINX = repo('docker.io', 'library/nginx');
const PRIVATE = repo('ghcr.io', 'myorg/app');

/** Just what ClientAuth reads of a request: its Authorization header and the client's address. */
function request(authorization?: string, address = '10.0.0.1'): RequestContext {
  return { req: { headers: authorization ? { authorization } : {}, socket: { remoteAddress: address } }, address, log } as unknown as RequestContext;
}

/** The RegistryError a check throws (code, status, headers), or 'ok'. */
async function outcome(auth: ClientAuth, ctx: RequestContext, target: AuthTarget) {
  try {
    await auth.check(ctx, target);
    return 'ok';
  } catch (err) {
    if (!(err instanceof RegistryError)) throw err;
    return { code: err.code, status: err.status, headers: err.headers };
  }
}

let dir: string;
let clock: number;
async function openAuth(auth: Omit<NonNullable<ConfigInput['auth']>, 'htpasswd'>): Promise<{ auth: ClientAuth; htpasswd: Htpasswd }> {
  const path = join(dir, 'htpasswd');
  const users = [['alice', 'wonderland'], ['bob', 'builder']].map(([u, p]) => `${u}:${bcrypt.hashSync(p as string, 4).replace(/^\$2b\$/, '$2y$')}`);
  await writeFile(path, `${users.join('\n')}\n`);
  const config = parseConfig({ auth: { htpasswd: path, ...auth } }).auth;
  if (!config) throw new Error('no auth config');
  const htpasswd = await Htpasswd.open(path, log, () => clock);
  return { auth: new ClientAuth({ config, htpasswd, log, now: () => clock }), htpasswd };
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'regmirror-auth-'));
  clock = 5_000_000;
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('ClientAuth', () => {
  it('challenges an anonymous client at /v2/ and at a repository outside the anonymous rules', async () => {
    const { auth } = await openAuth({ anonymous: ['docker.io/library/*'] });
    const challenge = { code: 'UNAUTHORIZED', status: 401, headers: { 'www-authenticate': 'Basic realm="regmirror"' } };
    expect(await outcome(auth, request(), { kind: 'root' })).toEqual(challenge);
    expect(await outcome(auth, request(), { kind: 'metrics' })).toEqual(challenge);
    expect(await outcome(auth, request(), NGINX)).toBe('ok');
    expect(await outcome(auth, request(), PRIVATE)).toEqual(challenge);
    // A Bearer header is no Basic credential: the same as none.
    expect(await outcome(auth, request('Bearer abc'), PRIVATE)).toEqual(challenge);
  });

  it('answers a wrong password or unknown user with 401, and a right one with access', async () => {
    const { auth } = await openAuth({});
    expect(await outcome(auth, request(basic('alice', 'nope')), { kind: 'root' })).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
    expect(await outcome(auth, request(basic('mallory', 'wonderland')), NGINX)).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(await outcome(auth, request('Basic !!!not-base64'), NGINX)).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(await outcome(auth, request(basic('alice', 'wonderland')), { kind: 'root' })).toBe('ok');
    expect(await outcome(auth, request(basic('alice', 'wonderland')), PRIVATE)).toBe('ok');
  });

  it('denies a user a repository outside every rule that applies to them (403 DENIED)', async () => {
    const { auth } = await openAuth({
      anonymous: ['docker.io/library/*'],
      authenticated: ['quay.io/*'],
      users: { alice: ['ghcr.io/myorg/*'] },
    });
    const alice = request(basic('alice', 'wonderland'));
    const bob = request(basic('bob', 'builder'));
    expect(await outcome(auth, alice, PRIVATE)).toBe('ok');
    expect(await outcome(auth, alice, NGINX)).toBe('ok'); // what anonymous clients may, users may
    expect(await outcome(auth, bob, repo('quay.io', 'team/tool'))).toBe('ok');
    expect(await outcome(auth, bob, PRIVATE)).toMatchObject({ code: 'DENIED', status: 403 });
    expect(await outcome(auth, alice, repo('ghcr.io', 'otherorg/app'))).toMatchObject({ code: 'DENIED', status: 403 });
    expect(await outcome(auth, bob, { kind: 'root' })).toBe('ok');
  });

  it('runs one bcrypt for the many requests of a pull, parallel or not, and checks again after a password change', async () => {
    const { auth, htpasswd } = await openAuth({});
    const verify = vi.spyOn(htpasswd, 'verify');
    const alice = basic('alice', 'wonderland');
    const results = await Promise.all(Array.from({ length: 50 }, () => outcome(auth, request(alice), NGINX)));
    expect(results.every((r) => r === 'ok')).toBe(true);
    expect(await outcome(auth, request(alice), NGINX)).toBe('ok');
    expect(verify).toHaveBeenCalledTimes(1);
    // The file changes alice's password: the cached answer no longer counts, at the file's next check.
    await writeFile(join(dir, 'htpasswd'), `alice:${bcrypt.hashSync('changed', 4)}\n`);
    clock += 1000;
    expect(await outcome(auth, request(alice), NGINX)).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(await outcome(auth, request(basic('alice', 'changed')), NGINX)).toBe('ok');
  });

  it('limits failed logins per address: after 10 in a minute, 429 with Retry-After, even for the right password', async () => {
    const { auth, htpasswd } = await openAuth({});
    const verify = vi.spyOn(htpasswd, 'verify');
    for (let i = 0; i < 10; i++) {
      expect(await outcome(auth, request(basic('alice', `guess${i}`), '10.0.0.9'), NGINX)).toMatchObject({ code: 'UNAUTHORIZED' });
    }
    clock += 15_000;
    expect(await outcome(auth, request(basic('alice', 'wonderland'), '10.0.0.9'), NGINX)).toEqual({
      code: 'TOOMANYREQUESTS',
      status: 429,
      headers: { 'retry-after': '45' },
    });
    // Refused before bcrypt: a blocked address costs no CPU.
    expect(verify).toHaveBeenCalledTimes(10);
    // Another address, and anonymous pulls, are not affected; the window's end lifts the limit.
    expect(await outcome(auth, request(basic('alice', 'wonderland'), '10.0.0.10'), NGINX)).toBe('ok');
    clock += 45_000;
    expect(await outcome(auth, request(basic('alice', 'wonderland'), '10.0.0.9'), NGINX)).toBe('ok');
  });
});

describe('repository patterns', () => {
  it('match full references, * across slashes, with Docker Hub aliases folded', () => {
    expect(compilePattern('docker.io/library/*').test('docker.io/library/nginx')).toBe(true);
    expect(compilePattern('docker.io/library/*').test('docker.io/someuser/app')).toBe(false);
    expect(compilePattern('ghcr.io/myorg/*').test('ghcr.io/myorg/team/app')).toBe(true);
    expect(compilePattern('index.docker.io/library/*').test('docker.io/library/nginx')).toBe(true);
    expect(compilePattern('*').test('quay.io/a/b')).toBe(true);
    expect(compilePattern('docker.io/library/nginx').test('docker.io/library/nginx-extra')).toBe(false);
  });

  it('are refused by the config schema when they name no registry', () => {
    expect(() => parseConfig({ auth: { htpasswd: '/x', anonymous: ['library/*'] } })).toThrow(/starts with its registry/);
    expect(() => parseConfig({ auth: { htpasswd: '/x', users: { alice: ['docker.io/Library/*'] } } })).toThrow(/repository pattern/);
    expect(() => parseConfig({ auth: { anonymous: [] } })).toThrow(/htpasswd/);
    expect(parseConfig({ auth: { htpasswd: '/x' } }).auth).toEqual({ htpasswd: '/x', anonymous: [], authenticated: ['*'], users: {}, metrics: false });
  });
});
