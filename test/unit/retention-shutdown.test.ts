// Shutdown during a retention pass: the index closes after the pass has stopped, never under its iterators (a GC
// of a million blobs takes ~45 s; shutdown gave requests 10 s and then closed the index: LEVEL_ITERATOR_NOT_OPEN).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { openAdmin } from '../../src/app.js';
import { RetentionClosedError } from '../../src/cache/retention.js';
import { parseConfig } from '../../src/config/load.js';
import { openIndex } from '../../src/index/db.js';
import { LevelTagIndex } from '../../src/index/tag-index.js';
import { OCI_MANIFEST } from '../../src/registry/media-types.js';
import type { Digest } from '../../src/registry/reference.js';

const TAGS = 3000;
let dir: string;
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('closing the cache while a GC runs', () => {
  it('stops the GC at its next step and closes the index after it, not under its iterator', async () => {
    dir = await mkdtemp(join(tmpdir(), 'regmirror-shutdown-'));
    const db = await openIndex(dir);
    const tags = new LevelTagIndex(db, 100);
    for (let n = 0; n < TAGS; n++) {
      const digest = `sha256:${n.toString(16).padStart(64, '0')}` as Digest;
      await tags.put({ upstream: 'docker.io', repo: 'library/app', tag: `v${n}`, acceptKey: 'oci', digest, mediaType: OCI_MANIFEST, size: 1, checkedAt: 1 });
    }
    await db.close();

    const opened = await openAdmin(parseConfig({ dataDir: dir, upstream: { url: 'none' } }), pino({ level: 'silent' }));
    const gc = opened.admin.gc(true).then(
      () => 'finished',
      (err: unknown) => err,
    );
    await new Promise((resolve) => setImmediate(resolve));
    await opened.close();
    const outcome = await gc;
    // Stopped with its own error (3,000 roots outlast the close): never the index's LEVEL_ITERATOR_NOT_OPEN.
    expect(outcome).toBeInstanceOf(RetentionClosedError);
    expect(outcome).toMatchObject({ code: 'RETENTION_CLOSED' });
  });
});
