// Bundles whose paths do not fit a ustar name field: every sha512 blob is `blobs/sha512/<128 hex>` (141 bytes).
// Export must write the full path (a pax header, as tar does), so that tar, node-tar and our import read it back.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { create, list } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportCommand, importCommand } from '../../src/cli/bundle.js';
import type { CommandContext } from '../../src/cli/command.js';
import { DiskBlobStore } from '../../src/cache/blob-store.js';
import { OCI_MANIFEST } from '../../src/registry/media-types.js';
import { parseDigest } from '../../src/registry/reference.js';
import { REF_NAME } from '../../src/seed/oci-layout.js';

const run = promisify(execFile);
const sha512 = (bytes: Buffer) => `sha512:${createHash('sha512').update(bytes).digest('hex')}`;
const pathOf = (digest: string) => `blobs/sha512/${digest.slice('sha512:'.length)}`;

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'regmirror-longpath-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function cli(command: (ctx: CommandContext) => Promise<void>, args: string[], dataDir: string): Promise<string> {
  let text = '';
  await command({ args, configFile: undefined, env: { REGMIRROR_DATA: dataDir, REGMIRROR_UPSTREAM: 'none' }, out: (chunk) => (text += chunk) });
  return text;
}

/** An OCI layout directory of one image whose manifest, config and layer are all sha512. */
async function sha512Layout(dir: string): Promise<string[]> {
  const layer = randomBytes(3000);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha512(layer)] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha512(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha512(layer), size: layer.length }],
    }),
  );
  await mkdir(join(dir, 'blobs', 'sha512'), { recursive: true });
  for (const bytes of [layer, config, manifest]) await writeFile(join(dir, pathOf(sha512(bytes))), bytes);
  const index = { schemaVersion: 2, manifests: [{ mediaType: OCI_MANIFEST, digest: sha512(manifest), size: manifest.length, annotations: { [REF_NAME]: 'docker.io/library/long:1' } }] };
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return [manifest, config, layer].map(sha512);
}

describe('export of paths longer than 100 bytes', () => {
  it('writes sha512 blob paths in full: tar -tf and node-tar list them, and import takes the bundle', async () => {
    const layout = join(work, 'layout');
    const digests = await sha512Layout(layout);
    // Mirror A gets the image from a tar packed by node-tar itself (pax headers), the reference for ours.
    const packed = join(work, 'packed.tar');
    await create({ file: packed, cwd: layout, portable: true }, ['oci-layout', 'index.json', 'blobs']);
    const dataA = join(work, 'a');
    expect(await cli(importCommand, [packed], dataA)).toMatch(/1 image\(s\), 3 new blob\(s\)/);
    const bundle = join(work, 'long.tar');
    expect(await cli(exportCommand, ['docker.io/library/long:1', '-o', bundle], dataA)).toMatch(/1 image\(s\), 3 blob\(s\)/);

    const expected = ['oci-layout', 'index.json', ...digests.map(pathOf)].sort();
    expect(digests.map(pathOf).every((p) => p.length > 100)).toBe(true);
    const listed: string[] = [];
    await list({ file: bundle, strict: true, onReadEntry: (entry) => listed.push(entry.path) });
    expect(listed.sort()).toEqual(expected);
    const { stdout, stderr } = await run('tar', ['-tf', bundle]);
    expect(stdout.trim().split('\n').sort()).toEqual(expected);
    expect(stderr).toBe('');

    const dataB = join(work, 'b');
    expect(await cli(importCommand, [bundle], dataB)).toMatch(/1 image\(s\), 3 new blob\(s\) .*; tagged and pinned:\n {2}docker\.io\/library\/long:1\n/);
    const store = new DiskBlobStore(dataB);
    for (const digest of digests) expect(await store.stat(parseDigest(digest)), digest).toBeDefined();
  });

  it('imports an OCI layout directory, not only a tar, with every byte of every blob', async () => {
    const layout = join(work, 'layout-dir');
    const digests = await sha512Layout(layout);
    const data = join(work, 'from-dir');
    expect(await cli(importCommand, [layout], data)).toMatch(/1 image\(s\), 3 new blob\(s\)/);
    const store = new DiskBlobStore(data);
    for (const digest of digests) expect(await store.stat(parseDigest(digest)), digest).toBeDefined();
  });
});
