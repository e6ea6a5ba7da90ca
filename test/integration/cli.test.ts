// The regmirror CLI's commands, run in-process: ls lists what was pulled; cert makes a pair the server serves with;
// every command takes `--flag=value` as well as `--flag value`.
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { exportCommand } from '../../src/cli/bundle.js';
import { cert } from '../../src/cli/cert.js';
import type { CommandContext } from '../../src/cli/command.js';
import { fsck } from '../../src/cli/fsck.js';
import { ls } from '../../src/cli/ls.js';
import { seed } from '../../src/cli/seed.js';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { startMirror } from '../fixtures/mirror.js';
import { pull } from '../fixtures/puller.js';

let front: HubFront;
beforeAll(async () => {
  front = await startHubFront({ upstream: inject('registryUrl') });
});
afterAll(() => front?.close());

function context(args: string[], env: Record<string, string>): { ctx: CommandContext; output: () => string } {
  let text = '';
  return { ctx: { args, configFile: undefined, env, out: (chunk) => (text += chunk) }, output: () => text };
}

describe('regmirror ls', () => {
  it('lists each pulled tag with its digest, image size, hits and times, the same while the mirror runs and once stopped', async () => {
    const mirror = await startMirror(front.url);
    const image = inject('images').schema2;
    await pull(mirror.url, image.repo, image.tag);
    await pull(mirror.url, image.repo, image.tag);
    const running = context([], { REGMIRROR_DATA: mirror.dataDir });
    await ls(running.ctx); // through the admin socket
    await mirror.stop();

    const { ctx, output } = context([], { REGMIRROR_DATA: mirror.dataDir });
    await ls(ctx);
    const line = output().split('\n').find((l) => l.startsWith('schema2:1'));
    const imageBytes = image.size + image.platforms[0]!.layers.reduce((sum, l) => sum + l.size, 0);
    expect(line).toContain(image.digest.slice(0, 19));
    expect(line).toMatch(new RegExp(`${(imageBytes / 2 ** 20).toFixed(1)} MiB`));
    expect(line?.split(/\s{2,}/)[4]).toBe('2');
    expect(output()).toContain('1 tag(s)');
    expect(running.output()).toBe(output());
    await mirror.close();
  });

  it('says to enable admin.socket when the mirror runs without one; fsck says why it needs the mirror stopped', async () => {
    const mirror = await startMirror(front.url, { config: { admin: { socket: false } } });
    try {
      await expect(ls(context([], { REGMIRROR_DATA: mirror.dataDir }).ctx)).rejects.toThrow(/without an admin socket: set admin\.socket: true/);
      await expect(fsck(context([], { REGMIRROR_DATA: mirror.dataDir }).ctx)).rejects.toThrow(/^fsck needs the mirror stopped: .* downloads in progress/);
    } finally {
      await mirror.close();
    }
  });
});

describe('regmirror cert', () => {
  it('writes a certificate and key that the HTTPS listener serves with', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regmirror-cert-'));
    try {
      const { ctx, output } = context(['--out', dir, '--name', '127.0.0.1'], {});
      await cert(ctx);
      expect(output()).toContain('cert.pem');
      expect(await readFile(join(dir, 'cert.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');
      const mirror = await startMirror(front.url, { config: { tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') } } });
      await mirror.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('takes --flag=value forms', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regmirror-cert-'));
    try {
      const { ctx, output } = context([`--out=${dir}`, '--name=127.0.0.1', '--name=mirror.test', '--days=30'], {});
      await cert(ctx);
      expect(output()).toContain('for 127.0.0.1, mirror.test, valid 30 days');
      expect(await readFile(join(dir, 'key.pem'), 'utf8')).toContain('PRIVATE KEY');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects a malformed argument with its usage', async () => {
    await expect(cert(context(['--days', 'forever'], {}).ctx)).rejects.toThrow(/--days/);
  });
});

describe('regmirror seed and export', () => {
  it('take --file=, --platform=, --output= and --config= forms like their spaced ones', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regmirror-flags-'));
    try {
      const env = { REGMIRROR_DATA: join(dir, 'data') };
      const configFile = join(dir, 'config.yaml');
      await writeFile(configFile, `upstream:\n  url: "${front.url}"\n`);
      await writeFile(join(dir, 'images.txt'), 'multi:1 # two platforms\n');
      const seeded = context([`--config=${configFile}`, `--file=${join(dir, 'images.txt')}`, '--platform=linux/arm64'], env);
      await seed(seeded.ctx);
      expect(seeded.output()).toMatch(/seeded docker\.io\/library\/multi:1 sha256:\w+ \(linux\/arm64\)/);
      const bundle = join(dir, 'bundle.tar');
      const exported = context(['-c', configFile, '--pinned', `--output=${bundle}`], env);
      await exportCommand(exported.ctx);
      expect(exported.output()).toMatch(/1 image\(s\)/);
      expect((await stat(bundle)).size).toBeGreaterThan(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a flag without its value, naming it', async () => {
    await expect(seed(context(['schema2:1', '--platform'], {}).ctx)).rejects.toThrow(/^seed: --platform needs a value$/);
  });
});
