// skopeo, a real client, copies images through regmirror and gets exactly what upstream holds.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { startMirror, type TestMirror } from '../fixtures/mirror.js';

const run = promisify(execFile);

let front: HubFront;
let mirror: TestMirror;
let work: string;

beforeAll(async () => {
  front = await startHubFront({ upstream: inject('registryUrl') });
  mirror = await startMirror(front.url);
  work = await mkdtemp(join(tmpdir(), 'regmirror-skopeo-'));
});

afterAll(async () => {
  await mirror?.close();
  await front?.close();
  await rm(work, { recursive: true, force: true });
});

/**
 * Copies every platform of an image and lists what arrived. An OCI layout keeps an index as it is, but skopeo
 * rewrites a Docker schema2 image as OCI there, so schema2 goes to a `dir:` layout, which keeps every byte.
 */
async function copy(source: string, name: string, transport: 'oci' | 'dir') {
  const dir = join(work, name);
  await run('skopeo', ['copy', '--all', '--src-tls-verify=false', `docker://${source}`, `${transport}:${dir}`], {
    timeout: 120_000,
  });
  if (transport === 'oci') {
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    const blobs = (await readdir(join(dir, 'blobs', 'sha256'))).sort();
    return { top: index.manifests.map((m) => m.digest), blobs };
  }
  const top = `sha256:${createHash('sha256').update(await readFile(join(dir, 'manifest.json'))).digest('hex')}`;
  const blobs = (await readdir(dir)).filter((f) => /^[a-f0-9]{64}$/.test(f)).sort();
  return { top: [top], blobs };
}

const host = (url: string) => new URL(url).host;

describe('skopeo copy through regmirror', () => {
  it.each([
    ['multi-arch OCI index', 'multi', 'oci'],
    ['Docker schema2 image', 'schema2', 'dir'],
  ] as const)('copies the %s byte-identical to a direct copy, then serves it again with no upstream blob request', async (_, key, transport) => {
    const image = inject('images')[key];
    const direct = await copy(`${host(inject('registryUrl'))}/${image.repo}:${image.tag}`, `${key}-direct`, transport);
    front.reset();

    const first = await copy(`${host(mirror.url)}/${image.repo}:${image.tag}`, `${key}-mirror-1`, transport);
    expect(first).toEqual(direct);
    expect(first.top).toEqual([image.digest]);
    for (const platform of image.platforms) {
      if (key === 'multi') expect(first.blobs).toContain(platform.digest.slice('sha256:'.length));
      expect(first.blobs).toContain(platform.config.slice('sha256:'.length));
      for (const layer of platform.layers) expect(first.blobs).toContain(layer.digest.slice('sha256:'.length));
    }
    // The raw manifest, as a client sees it, is upstream's to the byte.
    const raw = (source: string) =>
      run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${source}/${image.repo}:${image.tag}`]);
    expect((await raw(host(mirror.url))).stdout).toBe((await raw(host(inject('registryUrl')))).stdout);
    await front.idle();
    expect(front.count({ method: 'GET', kind: 'blob' })).toBeGreaterThan(0);

    front.reset();
    const second = await copy(`${host(mirror.url)}/${image.repo}:${image.tag}`, `${key}-mirror-2`, transport);
    expect(second).toEqual(direct);
    await front.idle();
    expect(front.count({ kind: 'blob' })).toBe(0);
  });
});
