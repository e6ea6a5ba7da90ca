// Issue 15: bundles through a running mirror's admin socket. An export whose client goes away mid-stream leaves
// nothing behind (no hold on its blobs, no file) and the mirror serves on; `regmirror import` into another
// running mirror goes through its socket, spools under tmp/ and removes the spool.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { DeleteResult } from '../../src/admin/operations.js';
import { exportCommand, importCommand } from '../../src/cli/bundle.js';
import { seed } from '../../src/cli/seed.js';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { startMirror } from '../fixtures/mirror.js';
import { pull } from '../fixtures/puller.js';

let front: HubFront;
let dir: string;
beforeAll(async () => {
  front = await startHubFront({ upstream: inject('registryUrl') });
  dir = await mkdtemp(join(tmpdir(), 'rm-bundles-'));
});
afterAll(async () => {
  await front?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('bundles through the admin socket', () => {
  it('survives a client that leaves mid-export, then exports and imports between two running mirrors', async () => {
    const image = inject('images').schema2;
    const a = await startMirror(front.url);
    const b = await startMirror(front.url);
    const agent = new Agent({ connect: { socketPath: a.mirror.adminSocket as string }, keepAliveTimeout: 10 });
    try {
      const ref = `${image.repo}:${image.tag}`;
      // Seeded rather than pulled: a seed returns once every blob is recorded, a client's pull a little before.
      await seed({ args: [ref], configFile: undefined, env: { REGMIRROR_DATA: a.dataDir }, out: () => undefined });

      // A client that reads the first bytes of the tar and hangs up.
      const leaving = await request('http://localhost/api/v1/admin/export', { method: 'POST', dispatcher: agent, body: JSON.stringify({ refs: [ref] }) });
      expect({ status: leaving.statusCode, body: leaving.statusCode === 200 ? '' : await leaving.body.text() }).toEqual({ status: 200, body: '' });
      expect(JSON.parse(String(leaving.headers['x-regmirror-export']))).toMatchObject({ images: 1, blobs: 4, skipped: 0 });
      for await (const _chunk of leaving.body) break; // destroys the body: the connection goes
      expect((await request(`${a.url}/healthz`)).statusCode).toBe(200);

      const bundle = join(dir, 'schema2.tar');
      let text = '';
      await exportCommand({ args: [ref, '-o', bundle], configFile: undefined, env: { REGMIRROR_DATA: a.dataDir }, out: (t) => (text += t) });
      expect(text).toMatch(/schema2\.tar: 1 image\(s\), 4 blob\(s\)/);

      text = '';
      await importCommand({ args: [bundle], configFile: undefined, env: { REGMIRROR_DATA: b.dataDir }, out: (t) => (text += t) });
      expect(text).toContain('1 image(s), 4 new blob(s)');
      expect(text).toContain(`docker.io/${ref}`);
      expect(await readdir(join(b.dataDir, 'tmp'))).toEqual([]);

      // The seed pinned it: a pinned tag is not deleted behind the pin's back.
      const refused = await request('http://localhost/api/v1/admin/delete', { method: 'POST', dispatcher: agent, body: JSON.stringify({ ref, what: 'image' }) });
      expect([refused.statusCode, await refused.body.text()]).toEqual([403, expect.stringContaining(`docker.io/${ref} is pinned: unpin it first`)]);
      const unpinned = await request('http://localhost/api/v1/admin/pins', { method: 'DELETE', dispatcher: agent, body: JSON.stringify({ refs: [ref] }) });
      expect(unpinned.statusCode).toBe(200);
      await unpinned.body.dump();
      // Nothing of the abandoned export holds its blobs: deleting the image removes all four.
      const deleted = await request('http://localhost/api/v1/admin/delete', { method: 'POST', dispatcher: agent, body: JSON.stringify({ ref, what: 'image' }) });
      const report = (await deleted.body.json()) as DeleteResult;
      expect(report.content).toMatchObject({ inUse: 0, shared: 0 });
      expect(report.content?.removed).toHaveLength(4);

      front.reset();
      const pulled = await pull(b.url, image.repo, image.tag);
      expect(pulled.digest).toBe(image.digest);
      await front.idle();
      expect(front.count({ kind: 'blob' })).toBe(0);
    } finally {
      await agent.close();
      await a.close();
      await b.close();
    }
  });
});
