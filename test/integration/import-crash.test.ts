// Issue 14, finding 9: an import killed half-way (SIGKILL of the built `regmirror import`) leaves no trace: the
// next open of the data directory removes the files it added, and fsck finds nothing wrong.
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMirror } from '../fixtures/mirror.js';

const run = promisify(execFile);
const LAYERS = 120;
const LAYER_BYTES = 512 * 1024;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'regmirror-import-crash-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** An OCI layout directory of one image with many layers: long enough to import that a kill lands mid-way. */
async function bigLayout(path: string): Promise<string[]> {
  await mkdir(join(path, 'blobs', 'sha256'), { recursive: true });
  const put = (bytes: Buffer) => writeFile(join(path, 'blobs', 'sha256', sha256(bytes).slice('sha256:'.length)), bytes);
  const layers = Array.from({ length: LAYERS }, () => randomBytes(LAYER_BYTES));
  for (const layer of layers) await put(layer);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map(sha256) } }));
  await put(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(l), size: l.length })),
    }),
  );
  await put(manifest);
  const entry = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'docker.io/library/big:1' } };
  await writeFile(join(path, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [entry] }));
  await writeFile(join(path, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return [...layers, config, manifest].map(sha256);
}

async function storedFiles(dataDir: string): Promise<number> {
  let count = 0;
  const root = join(dataDir, 'blobs', 'sha256');
  for (const prefix of await readdir(root).catch(() => [])) count += (await readdir(join(root, prefix))).length;
  return count;
}

describe('an import killed half-way', () => {
  it('is undone at the next open: no file of it stays, and fsck finds nothing wrong', async () => {
    const layout = join(dir, 'layout');
    await bigLayout(layout);
    const dataDir = join(dir, 'data');
    const env = { ...process.env, REGMIRROR_DATA: dataDir, REGMIRROR_UPSTREAM: 'none' };
    const child = spawn(process.execPath, ['dist/src/main.js', 'import', layout], { env, stdio: 'ignore' });
    const journal = join(dataDir, 'import.journal');
    // Killed once some layers are in the store, long before all 120 are.
    for (let waited = 0; waited < 30_000; waited += 20) {
      const listed = (await readFile(journal, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
      if (listed >= 10) break;
      await sleep(20);
    }
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const left = await storedFiles(dataDir);
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(LAYERS);

    // Any open of the cache (serve, seed, import, export) undoes it.
    const mirror = await startMirror('none', { dataDir });
    await mirror.stop();
    expect(await storedFiles(dataDir)).toBe(0);
    expect((await readdir(dataDir)).sort()).toEqual(['blobs', 'index', 'tmp']);
    const { stdout } = await run(process.execPath, ['dist/src/main.js', 'fsck', '--verify-digests'], { env });
    expect(stdout).toContain('no problems found');
  });
});
