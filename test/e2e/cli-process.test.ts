// The built regmirror command as a user runs it: bad configs and bad flags stop it with one line, SIGTERM stops
// it cleanly, and `healthcheck` probes the listener the config names (what the container's HEALTHCHECK runs).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
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
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );
}

/** The status of GET url once something answers there (0 if nothing does within 5 s); self-signed TLS accepted. */
async function statusOnceUp(url: string): Promise<number> {
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
  try {
    for (let i = 0; i < 50; i++) {
      const status = await request(url, { dispatcher }).then(
        async (r) => (await r.body.dump(), r.statusCode),
        () => new Promise<number>((resolve) => setTimeout(() => resolve(0), 100)),
      );
      if (status !== 0) return status;
    }
    return 0;
  } finally {
    await dispatcher.close();
  }
}

async function stopped(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  return exited;
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
  it.each([
    ['--flag value', (port: number) => ['--listen', `127.0.0.1:${port}`, '--data-dir', join(dir, 'serve'), '--log-level', 'warn']],
    ['--flag=value', (port: number) => [`--listen=127.0.0.1:${port}`, `--data-dir=${join(dir, 'serve-eq')}`, '--log-level=warn', '--offline']],
  ])('serves /v2/ where its flags (%s) say, and exits 0 on SIGTERM', async (_, flags) => {
    const port = await freePort();
    const child = spawn('node', ['dist/src/main.js', 'serve', ...flags(port)], { stdio: 'ignore' });
    try {
      expect(await statusOnceUp(`http://127.0.0.1:${port}/v2/`)).toBe(200);
      expect(await stopped(child)).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});

describe('regmirror flags', () => {
  it.each([
    ['an unknown flag', ['serve', '--bogus'], 'serve: unknown flag --bogus'],
    ['an unknown flag in = form', ['serve', '--bogus=1'], 'serve: unknown flag --bogus'],
    ['a flag without its value', ['serve', '--listen'], 'serve: --listen needs a value'],
    ['a flag followed by another flag instead of its value', ['serve', '--listen', '--offline'], 'serve: --listen needs a value'],
    ['an unknown flag of ls', ['ls', '--long'], 'ls: unknown flag --long'],
    ['-f without its file', ['seed', 'alpine:3.19', '-f'], 'seed: -f needs a value'],
    ['a value given to a switch', ['gc', '--dry-run=yes'], 'gc: --dry-run takes no value'],
  ])('refuses %s with one line naming the flag, the usage, status 2', async (_, args, message) => {
    const { code, stderr } = await start(args);
    expect(code).toBe(2);
    const [first, second] = stderr.split('\n');
    expect(first).toBe(`regmirror: ${message}`);
    expect(second).toMatch(new RegExp(`^usage: regmirror ${args[0]} `));
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});

describe('regmirror healthcheck', () => {
  it('exits 0 against a mirror on a port given only through REGMIRROR_LISTEN, and 1 with one line once nothing listens', async () => {
    const port = await freePort();
    // 0.0.0.0 as in the container image: the check connects to loopback.
    const env = { REGMIRROR_LISTEN: `0.0.0.0:${port}`, REGMIRROR_DATA: join(dir, 'health'), REGMIRROR_LOG_LEVEL: 'warn' };
    const child = spawn('node', ['dist/src/main.js', 'serve'], { env: { ...process.env, ...env }, stdio: 'ignore' });
    try {
      expect(await statusOnceUp(`http://127.0.0.1:${port}/healthz`)).toBe(200);
      expect(await start(['healthcheck'], env)).toMatchObject({ code: 0, stderr: '' });
      expect(await stopped(child)).toBe(0);
      const down = await start(['healthcheck'], env);
      expect(down.code).toBe(1);
      expect(down.stderr.trim().split('\n')).toHaveLength(1);
      expect(down.stderr).toContain(`127.0.0.1:${port}`);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('probes over HTTPS, accepting the self-signed certificate, when the config file (REGMIRROR_CONFIG) turns tls on', async () => {
    const tls = join(dir, 'tls');
    expect((await start(['cert', `--out=${tls}`, '--name=127.0.0.1'])).code).toBe(0);
    const configFile = join(dir, 'tls.yaml');
    await writeFile(configFile, `tls:\n  cert: "${join(tls, 'cert.pem')}"\n  key: "${join(tls, 'key.pem')}"\n`);
    const port = await freePort();
    const env = { REGMIRROR_CONFIG: configFile, REGMIRROR_LISTEN: `127.0.0.1:${port}`, REGMIRROR_DATA: join(dir, 'health-tls'), REGMIRROR_LOG_LEVEL: 'warn' };
    const child = spawn('node', ['dist/src/main.js', 'serve'], { env: { ...process.env, ...env }, stdio: 'ignore' });
    try {
      expect(await statusOnceUp(`https://127.0.0.1:${port}/healthz`)).toBe(200);
      expect(await start(['healthcheck'], env)).toMatchObject({ code: 0, stderr: '' });
    } finally {
      await stopped(child);
    }
  });
});
