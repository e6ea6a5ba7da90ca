// The built regmirror command as a user runs it: bad configs stop it with one line, SIGTERM stops it cleanly.
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../fixtures/registry.js';

const run = promisify(execFile);
let dir: string;

beforeAll(async () => {
  // dist/ is built by test/global-setup.ts.
  dir = await mkdtemp(join(tmpdir(), 'regmirror-cli-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function start(args: string[], env: Record<string, string> = {}) {
  return run('node', ['dist/src/main.js', ...args], { env: { ...process.env, ...env }, timeout: 20_000 }).then(
    (r) => ({ code: 0, stderr: r.stderr }),
    (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
  );
}

describe('regmirror serve with a bad config', () => {
  it.each([
    ['a typo in a key', 'upstream:\n  urll: "https://example.test"\n', 'upstream.urll'],
    ['a wrong type', 'upstream:\n  connections: many\n', 'upstream.connections'],
    ['a bad duration', 'tags:\n  ttl: ten minutes\n', 'tags.ttl'],
  ])('stops at once on %s with one line naming the key, no stack trace', async (_, yaml, key) => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, yaml);
    const { code, stderr } = await start(['serve', '--config', file], { REGMIRROR_DATA: join(dir, 'data') });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain(key);
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it('names the key of a bad command-line flag in one line too', async () => {
    const { code, stderr } = await start(['serve', '--listen', 'nowhere', '--data-dir', join(dir, 'data')]);
    expect(code).toBe(1);
    expect(stderr.trim()).toMatch(/^config: listen: expected host:port/);
  });
});

describe('regmirror serve', () => {
  it('serves /v2/ where its flags say, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const args = ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', join(dir, 'serve'), '--log-level', 'warn'];
    const child = spawn('node', ['dist/src/main.js', ...args], { stdio: 'ignore' });
    try {
      let status = 0;
      for (let i = 0; i < 50 && status !== 200; i++) {
        status = await request(`http://127.0.0.1:${port}/v2/`).then(
          async (r) => (await r.body.dump(), r.statusCode),
          () => new Promise<number>((resolve) => setTimeout(() => resolve(0), 100)),
        );
      }
      expect(status).toBe(200);
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
