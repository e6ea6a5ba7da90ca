// The regmirror CLI's commands, run in-process: ls lists what was pulled; cert makes a pair the server serves with.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cert } from '../../src/cli/cert.js';
import type { CommandContext } from '../../src/cli/command.js';
import { ls } from '../../src/cli/ls.js';
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
  it('lists each pulled tag with its digest, image size, hits and times; refuses while the mirror runs', async () => {
    const mirror = await startMirror(front.url);
    const image = inject('images').schema2;
    await pull(mirror.url, image.repo, image.tag);
    await pull(mirror.url, image.repo, image.tag);
    const running = context([], { REGMIRROR_DATA: mirror.dataDir });
    await expect(ls(running.ctx)).rejects.toThrow(/in use by a running regmirror/);
    await mirror.stop();

    const { ctx, output } = context([], { REGMIRROR_DATA: mirror.dataDir });
    await ls(ctx);
    const line = output().split('\n').find((l) => l.startsWith('library/schema2:1'));
    const imageBytes = image.size + image.platforms[0]!.layers.reduce((sum, l) => sum + l.size, 0);
    expect(line).toContain(image.digest.slice(0, 19));
    expect(line).toMatch(new RegExp(`${(imageBytes / 2 ** 20).toFixed(1)} MiB`));
    expect(line?.split(/\s{2,}/)[4]).toBe('2');
    expect(output()).toContain('1 tag(s)');
    await mirror.close();
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

  it('rejects a malformed argument with its usage', async () => {
    await expect(cert(context(['--days', 'forever'], {}).ctx)).rejects.toThrow(/--days/);
  });
});
