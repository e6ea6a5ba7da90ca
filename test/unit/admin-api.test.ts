// The admin API of an in-process mirror (offline, temp data directory): its socket's file (mode 0600, a stale
// one replaced, removed on close, none for a path too long), bad input as 4xx registry JSON, and the bearer
// token on the network port.
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { createMirror, type Mirror } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';

const TOKEN = 'a-long-enough-admin-token';
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const done of cleanup.splice(0).reverse()) await done();
});

async function start(config: Partial<ConfigInput> = {}, logLines?: string[]): Promise<{ mirror: Mirror; url: string; dataDir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'rm-admin-'));
  const dataDir = (config.dataDir) ?? dir;
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const log = logLines ? pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) }) : pino({ level: 'silent' });
  const mirror = await createMirror(parseConfig({ ...config, dataDir, listen: '127.0.0.1:0', upstream: { url: 'none' }, shutdownTimeout: '1s' }), log);
  const { port } = await mirror.listen();
  cleanup.push(() => mirror.close());
  return { mirror, url: `http://127.0.0.1:${port}`, dataDir };
}

async function viaSocket(mirror: Mirror, method: 'GET' | 'POST' | 'DELETE', path: string, body?: string) {
  const agent = new Agent({ connect: { socketPath: mirror.adminSocket as string }, keepAliveTimeout: 10 });
  try {
    const response = await request(`http://localhost/api/v1/admin/${path}`, { method, dispatcher: agent, ...(body === undefined ? {} : { body }) });
    return { status: response.statusCode, json: (await response.body.json()) as Record<string, unknown> & { errors?: Array<{ code: string; message: string }> } };
  } finally {
    await agent.close();
  }
}

describe('the admin socket', () => {
  it('is created with mode 0600 in the data directory, replacing a stale file, and removed on close', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rm-admin-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'admin.sock'), 'left by a mirror killed with -9');
    const { mirror } = await start({ dataDir: dir });
    expect(mirror.adminSocket).toBe(join(dir, 'admin.sock'));
    const info = await stat(join(dir, 'admin.sock'));
    expect(info.isSocket()).toBe(true);
    expect(info.mode & 0o777).toBe(0o600);
    expect((await viaSocket(mirror, 'GET', 'pins')).json).toEqual({ pins: [] });
    await mirror.close();
    await expect(stat(join(dir, 'admin.sock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('is not created when admin.socket is false', async () => {
    const { mirror, dataDir } = await start({ admin: { socket: false } });
    expect(mirror.adminSocket).toBeUndefined();
    await expect(stat(join(dataDir, 'admin.sock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('is left out with a warning, not a crash, when the data directory path is too long for a socket', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rm-admin-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const deep = join(dir, 'x'.repeat(60), 'y'.repeat(60));
    await mkdir(deep, { recursive: true });
    const lines: string[] = [];
    const { mirror, url } = await start({ dataDir: deep }, lines);
    expect(mirror.adminSocket).toBeUndefined();
    expect(lines.some((l) => l.includes('admin socket not created: its path is too long'))).toBe(true);
    expect((await request(`${url}/healthz`)).statusCode).toBe(200);
  });
});

describe('admin API input', () => {
  it('answers a bad reference, bad JSON, a missing field and an unknown tag with 4xx registry errors', async () => {
    const { mirror } = await start();
    const cases: Array<[string, 'POST' | 'DELETE', string, number, string]> = [
      ['pins', 'POST', '{"refs":["Not A Reference"]}', 400, 'NAME_INVALID'],
      ['pins', 'POST', '{"refs":"alpine"}', 400, 'BAD_REQUEST'],
      ['pins', 'DELETE', '{"refs":[]}', 400, 'BAD_REQUEST'],
      ['delete', 'POST', '{not json', 400, 'BAD_REQUEST'],
      ['delete', 'POST', '[1,2]', 400, 'BAD_REQUEST'],
      ['delete', 'POST', '{"ref":"alpine:3.19","what":"everything"}', 400, 'BAD_REQUEST'],
      ['delete', 'POST', '{"ref":"alpine:3.19"}', 404, 'MANIFEST_UNKNOWN'],
      ['delete', 'POST', `{"ref":"alpine@sha256:${'a'.repeat(64)}","what":"image"}`, 400, 'TAG_INVALID'],
      ['revalidate', 'POST', '{}', 400, 'BAD_REQUEST'],
      ['revalidate', 'POST', '{"ref":"ghcr.io/owner/app:1"}', 404, 'NAME_UNKNOWN'],
      ['gc', 'POST', '{"dryRun":"yes"}', 400, 'BAD_REQUEST'],
      ['export', 'POST', '{"refs":["alpine:3.19"]}', 404, 'MANIFEST_UNKNOWN'],
      ['export', 'POST', '{}', 400, 'BAD_REQUEST'],
      ['nothing-here', 'POST', '{}', 404, 'NOT_FOUND'],
      ['pins', 'POST', `{"refs":["${'a'.repeat(2 << 20)}"]}`, 413, 'TOO_LARGE'],
    ];
    for (const [path, method, body, status, code] of cases) {
      const answer = await viaSocket(mirror, method, path, body);
      expect({ path, body: body.slice(0, 60), status: answer.status, code: answer.json.errors?.[0]?.code }).toEqual({ path, body: body.slice(0, 60), status, code });
    }
  });

  it('pins and unpins full references, and lists them', async () => {
    const { mirror } = await start({ cache: { pins: ['busybox:1'] } });
    expect((await viaSocket(mirror, 'POST', 'pins', '{"refs":["alpine:3.19","alpine:3.19"]}')).json).toEqual({
      changes: [
        { ref: 'docker.io/library/alpine:3.19', changed: true },
        { ref: 'docker.io/library/alpine:3.19', changed: false },
      ],
    });
    const listed = (await viaSocket(mirror, 'GET', 'pins')).json.pins as Array<{ ref: string; fromConfig: boolean }>;
    expect(listed.map((p) => [p.ref, p.fromConfig])).toEqual([
      ['docker.io/library/alpine:3.19', false],
      ['docker.io/library/busybox:1', true],
    ]);
    expect((await viaSocket(mirror, 'DELETE', 'pins', '{"refs":["alpine:3.19"]}')).json).toEqual({ changes: [{ ref: 'docker.io/library/alpine:3.19', changed: true }] });
  });

  it('refuses to seed on an offline mirror with an error line, and a GC dry run reports what it would remove', async () => {
    const { mirror } = await start();
    const agent = new Agent({ connect: { socketPath: mirror.adminSocket as string }, keepAliveTimeout: 10 });
    cleanup.push(() => agent.close());
    const seeded = await request('http://localhost/api/v1/admin/seed', { method: 'POST', dispatcher: agent, body: '{"refs":["alpine:3.19"]}' });
    expect(seeded.statusCode).toBe(200);
    expect(seeded.headers['content-type']).toBe('application/x-ndjson');
    const lines = (await seeded.body.text()).trim().split('\n').map((l) => JSON.parse(l) as { event: string; error?: { code: string } });
    expect(lines.at(-1)).toMatchObject({ event: 'error', error: { code: 'UNSUPPORTED' } });
    expect((await viaSocket(mirror, 'POST', 'gc', '{"dryRun":true}')).json).toEqual({ dryRun: true, removed: [], bytes: 0, reachable: 0 });
  });
});

describe('admin API on the network port', () => {
  it('is 404 without admin.token', async () => {
    const { url } = await start();
    const response = await request(`${url}/api/v1/admin/images`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(response.statusCode).toBe(404);
    await response.body.dump();
  });

  it('takes exactly the bearer token, and answers a missing or wrong one with the same 401', async () => {
    const { url, dataDir } = await start({ admin: { token: TOKEN } });
    const answers = [];
    for (const authorization of [undefined, 'Bearer wrong', `Bearer ${TOKEN}x`, `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}`]) {
      const response = await request(`${url}/api/v1/admin/images`, authorization ? { headers: { authorization } } : {});
      answers.push({ status: response.statusCode, challenge: response.headers['www-authenticate'], body: await response.body.text() });
    }
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect(answers[0]?.status).toBe(401);
    const ok = await request(`${url}/api/v1/admin/images`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.statusCode).toBe(200);
    expect(await ok.body.json()).toEqual({ dataDir, images: [] });
  });
});
