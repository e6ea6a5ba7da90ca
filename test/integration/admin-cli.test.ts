// Issue 15, must-show 2: with a mirror process running (dist/, built by global-setup), `regmirror ls`, `pin`,
// `unpin`, `gc --dry-run`, `seed` and `export` succeed through its admin socket (its access log says so); once it
// is stopped, the same commands work on the data directory directly and print the same text (timestamps aside),
// and the two exports are the same bytes.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { exportCommand } from '../../src/cli/bundle.js';
import type { CommandContext } from '../../src/cli/command.js';
import { gc } from '../../src/cli/gc.js';
import { ls } from '../../src/cli/ls.js';
import { pin, unpin } from '../../src/cli/pin.js';
import { seed } from '../../src/cli/seed.js';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { spawnServe } from '../fixtures/mirror-process.js';
import { freePort } from '../fixtures/registry.js';

let front: HubFront;
let dir: string;
beforeAll(async () => {
  front = await startHubFront({ upstream: inject('registryUrl') });
  dir = await mkdtemp(join(tmpdir(), 'rm-cli-'));
});
afterAll(async () => {
  await front?.close();
  await rm(dir, { recursive: true, force: true });
});

type Command = (ctx: CommandContext) => Promise<void>;

async function run(command: Command, args: string[], env: Record<string, string>): Promise<string> {
  let text = '';
  await command({ args, configFile: undefined, env, out: (chunk) => (text += chunk) });
  return text;
}

/** Starts `regmirror serve` on the data directory; its log lines are collected. */
async function serve(dataDir: string, logLines: string[]): Promise<ChildProcess> {
  const port = await freePort();
  const args = ['--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--upstream', front.url, '--log-level', 'info'];
  return spawnServe(args, port, (line) => logLines.push(line));
}

/** Requests the mirror's access log shows on its admin socket, as "METHOD path". */
function socketRequests(logLines: string[]): string[] {
  return logLines
    .map((line) => JSON.parse(line) as { msg?: string; via?: string; method?: string; path?: string; status?: number })
    .filter((entry) => entry.msg === 'request' && entry.via === 'socket' && entry.status === 200)
    .map((entry) => `${entry.method} ${entry.path}`);
}

const withoutTimes = (text: string): string => text.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>');

describe('the admin commands against a running mirror, then a stopped one', () => {
  it('go through the admin socket while it runs, and give the same output directly once it is stopped', async () => {
    const dataDir = join(dir, 'data');
    const env = { REGMIRROR_DATA: dataDir, REGMIRROR_UPSTREAM: front.url };
    const log: string[] = [];
    const mirror = await serve(dataDir, log);
    const live: Record<string, string> = {};
    try {
      live.seed = await run(seed, ['schema2:1'], env);
      live.ls = await run(ls, [], env);
      live.pin = await run(pin, ['someuser/app:v1'], env);
      live.pins = await run(pin, [], env);
      live.unpin = await run(unpin, ['someuser/app:v1'], env);
      live.gc = await run(gc, ['--dry-run'], env);
      live.export = await run(exportCommand, ['--pinned', '-o', join(dir, 'live.tar')], env);
    } finally {
      mirror.kill('SIGTERM');
      await once(mirror, 'exit');
    }
    expect(socketRequests(log)).toEqual([
      'POST /api/v1/admin/seed',
      'GET /api/v1/admin/images',
      'POST /api/v1/admin/pins',
      'GET /api/v1/admin/pins',
      'DELETE /api/v1/admin/pins',
      'POST /api/v1/admin/gc',
      'POST /api/v1/admin/export',
    ]);
    expect(live.seed).toMatch(/^seeded docker\.io\/library\/schema2:1 sha256:\w+ \(single\): 3 blobs, 14\.4 MiB fetched/);
    expect(live.ls).toContain('schema2:1');
    expect(live.pins).toContain('docker.io/someuser/app:v1 (pinned ');
    expect(live.unpin).toBe('unpinned docker.io/someuser/app:v1\n');
    expect(live.gc).toMatch(/^would remove 0 item\(s\), 0 B; \d+ digest\(s\) reachable/);
    expect(live.export).toContain('1 image(s), 4 blob(s)');
    await expect(stat(join(dataDir, 'admin.sock'))).rejects.toMatchObject({ code: 'ENOENT' });

    // Stopped: the same commands open the data directory themselves.
    const direct: Record<string, string> = {};
    direct.ls = await run(ls, [], env);
    direct.pin = await run(pin, ['someuser/app:v1'], env);
    direct.pins = await run(pin, [], env);
    direct.unpin = await run(unpin, ['someuser/app:v1'], env);
    direct.gc = await run(gc, ['--dry-run'], env);
    direct.export = await run(exportCommand, ['--pinned', '-o', join(dir, 'live.tar').replace('live', 'direct')], env);
    // A seed of the same image into an empty directory: the same downloads, the same lines.
    direct.seed = await run(seed, ['schema2:1'], { ...env, REGMIRROR_DATA: join(dir, 'fresh') });

    for (const name of Object.keys(live)) {
      expect({ name, text: withoutTimes(direct[name] ?? '').replace('direct.tar', 'live.tar') }).toEqual({ name, text: withoutTimes(live[name] ?? '') });
    }
    expect((await readFile(join(dir, 'direct.tar'))).equals(await readFile(join(dir, 'live.tar')))).toBe(true);
  });
});
