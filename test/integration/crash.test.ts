// Issue 6, crash safety: the mirror process (dist/, built by global-setup) is killed with SIGKILL at 20 random
// moments during concurrent cold pulls. After each kill, `regmirror fsck --verify-digests` must find nothing
// wrong; after each restart, pulls must be byte-correct (the puller hashes every blob and manifest).
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { spawnServe } from '../fixtures/mirror-process.js';
import { freePort } from '../fixtures/registry.js';
import { pull } from '../fixtures/puller.js';

const run = promisify(execFile);
const KILLS = 20;

let front: HubFront;
let dir: string;
let dataDir: string;
let configFile: string;
beforeAll(async () => {
  // 40 MB/s per stream: the 30 MiB layer takes about 0.8 s, so kills land before, during and after downloads.
  front = await startHubFront({ upstream: inject('registryUrl'), bandwidthBytesPerSec: 40_000_000 });
  dir = await mkdtemp(join(tmpdir(), 'regmirror-crash-'));
  dataDir = join(dir, 'data');
  // A quota below the image set (about 60 MiB): every round evicts, so pulls stay cold and kills also land
  // in the middle of evictions.
  configFile = join(dir, 'regmirror.yaml');
  await writeFile(configFile, 'cache:\n  maxBytes: "24MiB"\n');
});
afterAll(async () => {
  await front?.close();
  await rm(dir, { recursive: true, force: true });
});

function startServer(port: number): Promise<ChildProcess> {
  return spawnServe(['--config', configFile, '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--upstream', front.url, '--log-level', 'warn'], port);
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

async function fsck(): Promise<{ code: number; out: string }> {
  return run(process.execPath, ['dist/src/main.js', 'fsck', '--verify-digests', '--config', configFile], { env: { ...process.env, REGMIRROR_DATA: dataDir } }).then(
    (r) => ({ code: 0, out: r.stdout + r.stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, out: err.stdout + err.stderr }),
  );
}

describe('kill -9 during cold pulls', () => {
  it(`leaves a consistent store after each of ${KILLS} kills, and correct pulls after each restart`, async () => {
    const { multi, schema2, user } = inject('images');
    const wanted = [
      { repo: multi.repo, tag: multi.tag, architecture: 'amd64' },
      { repo: multi.repo, tag: multi.tag, architecture: 'arm64' },
      { repo: schema2.repo, tag: schema2.tag },
      { repo: user.repo, tag: user.tag },
    ];
    const port = await freePort();
    let completed = 0;
    let upstreamBlobGets = 0;
    for (let i = 0; i < KILLS; i++) {
      const child = await startServer(port);
      front.reset();
      const agent = new Agent();
      const pulls = wanted.map((w) =>
        pull(`http://127.0.0.1:${port}`, w.repo, w.tag, { dispatcher: agent, ...(w.architecture ? { architecture: w.architecture } : {}) }).then(
          () => (completed++, undefined),
          (err: Error) => err,
        ),
      );
      await sleep(Math.floor(Math.random() * 900));
      await kill(child);
      const errors = (await Promise.all(pulls)).filter((e) => e !== undefined);
      upstreamBlobGets += front.count({ method: 'GET', kind: 'blob' });
      await agent.destroy();
      // A kill breaks responses; it never makes one complete with wrong bytes.
      for (const err of errors) expect(err.message).not.toMatch(/got sha256:|digest header mismatch/);
      const check = await fsck();
      expect(check.out, `fsck after kill ${i + 1}`).toContain('no problems found');
      expect(check.code).toBe(0);
    }
    // After the last restart everything pulls, byte-correct, and the store still checks out.
    const child = await startServer(port);
    try {
      for (const w of wanted) await pull(`http://127.0.0.1:${port}`, w.repo, w.tag, w.architecture ? { architecture: w.architecture } : {});
    } finally {
      await kill(child);
    }
    const final = await fsck();
    expect(final.code, final.out).toBe(0);
    // The rounds were cold: each one downloaded blobs again (the quota evicted them).
    expect(upstreamBlobGets).toBeGreaterThan(KILLS);
    const summary = final.out.split('\n').find((l) => l.includes('index record(s)')) ?? '';
    console.log(`crash test: ${KILLS} kills, ${completed} of ${KILLS * wanted.length} pulls completed before their kill, ${upstreamBlobGets} upstream blob GETs; final fsck: ${summary}`);
  }, 240_000);
});
