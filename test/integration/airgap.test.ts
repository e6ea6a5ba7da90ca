// Issue 7: air-gapped sites. Mirror A (online) seeds and exports; mirror B (its upstream unreachable, or
// offline) imports and serves; bundles are OCI image layouts that skopeo reads and writes too.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, open, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { exportCommand, importCommand } from '../../src/cli/bundle.js';
import type { CommandContext } from '../../src/cli/command.js';
import { fsck } from '../../src/cli/fsck.js';
import { seed } from '../../src/cli/seed.js';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { buildLayer, buildSchema2Image, pushImage } from '../fixtures/images.js';
import { startMirror } from '../fixtures/mirror.js';
import { DOCKER_ACCEPT, pull } from '../fixtures/puller.js';

const run = promisify(execFile);
/** Nothing listens there: B's upstream is unreachable. */
const UNREACHABLE = 'http://127.0.0.1:9';

let front: HubFront;
let work: string;
let dataA: string;
let dataB: string;
beforeAll(async () => {
  front = await startHubFront({ upstream: inject('registryUrl') });
  work = await mkdtemp(join(tmpdir(), 'regmirror-airgap-'));
  dataA = join(work, 'a');
  dataB = join(work, 'b');
});
afterAll(async () => {
  await front?.close();
  await rm(work, { recursive: true, force: true });
});

async function cli(command: (ctx: CommandContext) => Promise<void>, args: string[], env: Record<string, string>): Promise<string> {
  let text = '';
  await command({ args, configFile: undefined, env, out: (chunk) => (text += chunk) });
  return text;
}
const envA = () => ({ REGMIRROR_DATA: dataA, REGMIRROR_UPSTREAM: front.url });
const envB = () => ({ REGMIRROR_DATA: dataB, REGMIRROR_UPSTREAM: UNREACHABLE });

/** skopeo copy --all into an OCI layout: the index.json digests and the set of blob files. */
async function skopeoCopy(source: string, name: string) {
  const dir = join(work, name);
  await run('skopeo', ['copy', '--all', '--src-tls-verify=false', source, `oci:${dir}`], { timeout: 120_000 });
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  return { top: index.manifests.map((m) => m.digest), blobs: (await readdir(join(dir, 'blobs', 'sha256'))).sort() };
}

/** Blob paths in a tar, with the offset of each one's data. */
async function tarEntries(file: string): Promise<Array<{ name: string; size: number; offset: number }>> {
  const bytes = await readFile(file);
  const entries: Array<{ name: string; size: number; offset: number }> = [];
  for (let at = 0; at + 512 <= bytes.length; ) {
    const name = bytes.subarray(at, at + 100).toString('utf8').replace(/\0.*$/s, '');
    if (name === '') break;
    const size = parseInt(bytes.subarray(at + 124, at + 136).toString('utf8').replace(/\0.*$/s, '').trim(), 8);
    entries.push({ name, size, offset: at + 512 });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return entries;
}

const host = (url: string) => new URL(url).host;

describe('seed, export, import, serve without upstream', () => {
  const bundle = () => join(work, 'bundle.tar');

  it('B serves three images A seeded and exported (every platform), byte-identical to upstream, never asking upstream', async () => {
    const { multi, schema2, user } = inject('images');
    const seeded = await cli(seed, ['docker.io/library/multi:1', '--all-platforms'], envA());
    expect(seeded).toMatch(/seeded docker\.io\/library\/multi:1 sha256:\w+ \(linux\/amd64, linux\/arm64\)/);
    const more = await cli(seed, ['schema2:1', 'someuser/app:v1'], envA());
    expect(more).toMatch(/2 image\(s\), \d+ blob\(s\): .* fetched, .* already cached, 2 pull\(s\) spent/);
    const exported = await cli(exportCommand, ['--pinned', '-o', bundle()], envA());
    expect(exported).toMatch(/3 image\(s\)/);

    const imported = await cli(importCommand, [bundle()], envB());
    expect(imported).toContain('docker.io/library/multi:1');
    const b = await startMirror(UNREACHABLE, { dataDir: dataB });
    try {
      for (const image of [multi, schema2, user]) {
        const direct = await skopeoCopy(`docker://${host(inject('registryUrl'))}/${image.repo}:${image.tag}`, `direct-${image.repo.replace('/', '-')}`);
        const viaB = await skopeoCopy(`docker://${host(b.url)}/${image.repo}:${image.tag}`, `b-${image.repo.replace('/', '-')}`);
        expect(viaB, image.repo).toEqual(direct);
      }
    } finally {
      await b.stop();
    }
  });

  it('an incremental export after a tag moved holds only the new manifest and blobs; B then serves the new digest', async () => {
    const registry = inject('registryUrl');
    const base = await buildLayer({ sizeBytes: 1024 * 1024, seed: 'airgap-base', randomFraction: 0.9 });
    const v1 = await pushImage(registry, 'airgap/app', '1', buildSchema2Image({ os: 'linux', architecture: 'amd64', layers: [base] }));
    await cli(seed, ['airgap/app:1'], envA());
    const first = join(work, 'first.tar');
    await cli(exportCommand, ['airgap/app:1', '-o', first], envA());
    await cli(importCommand, [first], envB());

    const extra = await buildLayer({ sizeBytes: 512 * 1024, seed: 'airgap-v2', randomFraction: 0.9 });
    const v2 = await pushImage(registry, 'airgap/app', '1', buildSchema2Image({ os: 'linux', architecture: 'amd64', layers: [base, extra] }));
    expect(v2.digest).not.toBe(v1.digest);
    await cli(seed, ['airgap/app:1'], envA());
    const second = join(work, 'second.tar');
    const out = await cli(exportCommand, ['airgap/app:1', '-o', second, '--have', first], envA());
    expect(out).toMatch(/1 blob\(s\) left out/);
    const blobs = (await tarEntries(second)).filter((e) => e.name.startsWith('blobs/')).map((e) => `sha256:${e.name.split('/')[2]}`).sort();
    expect(blobs).toEqual([v2.digest, v2.platforms[0]!.config, extra.digest].sort());

    await cli(importCommand, [second], envB());
    const b = await startMirror(UNREACHABLE, { dataDir: dataB });
    try {
      expect((await pull(b.url, 'airgap/app', '1')).digest).toBe(v2.digest);
    } finally {
      await b.stop();
    }
  });

  it('refuses a bundle with one flipped byte, naming the blob, and leaves B as it was', async () => {
    const damaged = join(work, 'damaged.tar');
    await copyFile(bundle(), damaged);
    const biggest = (await tarEntries(damaged)).filter((e) => e.name.startsWith('blobs/')).sort((x, y) => y.size - x.size)[0]!;
    const file = await open(damaged, 'r+');
    const one = Buffer.alloc(1);
    await file.read(one, 0, 1, biggest.offset + 1000);
    one[0] = one[0]! ^ 0xff;
    await file.write(one, 0, 1, biggest.offset + 1000);
    await file.close();
    const digest = `sha256:${biggest.name.split('/')[2]}`;
    const state = async (data: string) => ({ files: await readdir(join(data, 'blobs', 'sha256'), { recursive: true }), fsck: await cli(fsck, [], { REGMIRROR_DATA: data }) });

    // Into B, which has every blob of it already, and into an empty mirror C: refused both times.
    const before = await state(dataB);
    await expect(cli(importCommand, [damaged], envB())).rejects.toThrow(`refused, nothing imported: ${digest}`);
    expect(await state(dataB)).toEqual(before);
    const envC = { REGMIRROR_DATA: join(work, 'c'), REGMIRROR_UPSTREAM: UNREACHABLE };
    await expect(cli(importCommand, [damaged], envC)).rejects.toThrow(`refused, nothing imported: ${digest}`);
    expect(await cli(fsck, [], envC)).toMatch(/: 0 file\(s\), 0 B; 0 index record\(s\)/);
  });

  it('skopeo reads our bundle (oci-archive), and a bundle skopeo wrote imports into B', async () => {
    const { multi, user } = inject('images');
    // containers/image looks only at OCI-typed index.json entries: the multi-arch image (an OCI index) it finds.
    const dir = join(work, 'from-bundle');
    await run('skopeo', ['copy', '--override-arch', 'amd64', `oci-archive:${bundle()}:docker.io/library/multi:1`, `dir:${dir}`], { timeout: 60_000 });
    const manifest = await readFile(join(dir, 'manifest.json'));
    const amd64 = multi.platforms.find((p) => p.architecture === 'amd64')!;
    expect(`sha256:${createHash('sha256').update(manifest).digest('hex')}`).toBe(amd64.digest);
    for (const layer of amd64.layers) expect((await readdir(dir)).includes(layer.digest.slice(7))).toBe(true);

    const fromSkopeo = join(work, 'skopeo.tar');
    await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${host(inject('registryUrl'))}/${user.repo}:${user.tag}`, `oci-archive:${fromSkopeo}:docker.io/someuser/skopeo-made:1`], { timeout: 60_000 });
    const imported = await cli(importCommand, [fromSkopeo], envB());
    expect(imported).toContain('docker.io/someuser/skopeo-made:1');
    const b = await startMirror('none', { dataDir: dataB });
    try {
      const pulled = await pull(b.url, 'someuser/skopeo-made', '1');
      expect(pulled.blobs.size).toBe(user.platforms[0]!.layers.length + 1);
    } finally {
      await b.stop();
    }
  });

  it('offline: serves imported tags whatever their age, and answers a miss at once with 404 saying it is offline', async () => {
    const b = await startMirror('none', { dataDir: dataB, config: { tags: { ttl: '0s' } } });
    try {
      const { multi } = inject('images');
      expect((await pull(b.url, multi.repo, multi.tag)).digest).toBe(multi.digest);
      const started = performance.now();
      const res = await fetch(`${b.url}/v2/library/never-seeded/manifests/1`, { headers: { accept: DOCKER_ACCEPT } });
      expect(res.status).toBe(404);
      const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
      expect(body.errors[0]?.code).toBe('MANIFEST_UNKNOWN');
      expect(body.errors[0]?.message).toContain('offline');
      expect(performance.now() - started).toBeLessThan(500);
      const blob = await fetch(`${b.url}/v2/library/never-seeded/blobs/sha256:${'0'.repeat(64)}`);
      expect(blob.status).toBe(404);
      expect(((await blob.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('BLOB_UNKNOWN');
    } finally {
      await b.stop();
    }
  });
});
