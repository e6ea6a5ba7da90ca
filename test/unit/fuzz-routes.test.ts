// Property-based fuzzing (issue 14) of the route table with fake caches: whatever the method, path, query and
// headers, a request is answered or refused with a RegistryError, never another exception, and every blob file
// handed out is released exactly once.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRoutes } from '../../src/http/routes.js';
import { RegistryError } from '../../src/registry/errors.js';
import { MANIFEST_TYPES } from '../../src/registry/media-types.js';
import { fakeBlob, fakeContext, fakeDeps, type FakeBlob } from './route-fakes.js';

const RUNS = { numRuns: Number(process.env.FUZZ_RUNS ?? 300) };

const anyText = fc.string({ unit: 'binary', maxLength: 80 });
const piece = fc.oneof(
  fc.constantFrom('v2', 'library', 'alpine', 'ghcr.io', 'docker.io', 'index.docker.io', 'localhost:5000', 'Bad.Host', 'a..b', '..', '.', '', '%2e%2e', '%2F', 'manifests', 'blobs', 'tags', 'list', 'uploads', 'latest', `sha256:${'a'.repeat(64)}`, `sha256%3A${'b'.repeat(64)}`, 'sha256:', '%', '%zz', '%ED%A0%80', 'healthz', 'metrics'),
  fc.stringMatching(/^[a-z0-9._-]{1,10}$/),
  anyText,
);
const path = fc.oneof(
  fc.array(piece, { maxLength: 7 }).map((p) => `/v2/${p.join('/')}`),
  fc.tuple(fc.array(piece, { minLength: 1, maxLength: 4 }), fc.constantFrom('manifests', 'blobs', 'tags'), piece).map(([name, endpoint, ref]) => `/v2/${name.join('/')}/${endpoint}/${ref}`),
  fc.constantFrom('/v2', '/v2/', '/healthz', '/readyz', '/metrics', '/', '*', ''),
  anyText,
);
const query = fc.oneof(
  fc.constant(''),
  fc.tuple(fc.option(fc.oneof(piece, fc.constantFrom('docker.io', 'ghcr.io', 'quay.io'))), fc.option(fc.oneof(fc.nat(20).map(String), anyText)), fc.option(anyText)).map(([ns, n, last]) => {
    const params = new URLSearchParams();
    if (ns !== null) params.set('ns', ns);
    if (n !== null) params.set('n', n);
    if (last !== null) params.set('last', last);
    return `?${params.toString()}`;
  }),
  anyText.map((q) => `?${q}`),
);
const method = fc.oneof(fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'get'), anyText);
const headers = fc.record(
  {
    accept: fc.oneof(fc.constantFrom(...MANIFEST_TYPES, '*/*', ''), anyText),
    range: fc.oneof(fc.constantFrom('bytes=0-', 'bytes=-5', 'bytes=3-2', 'bytes=0-99999999999999999999', 'bytes=5-', 'bytes=1-2,4-5'), anyText),
  },
  { requiredKeys: [] },
);

describe('fuzzing the route table', () => {
  it('answers every request or refuses it with a RegistryError, and releases every blob it opened', async () => {
    await fc.assert(
      fc.asyncProperty(method, path, query, headers, fc.nat(100), async (m, p, q, h, size) => {
        const blobs: FakeBlob[] = [];
        const handler = createRoutes(
          fakeDeps(() => {
            const blob = fakeBlob(size);
            blobs.push(blob);
            return blob.handle;
          }),
        );
        const { ctx, written } = fakeContext(m, `${p}${q}`, h);
        try {
          await handler(ctx);
          expect(written.status).toBeGreaterThanOrEqual(200);
          expect(written.ended).toBe(true);
        } catch (err) {
          if (!(err instanceof RegistryError)) throw err;
          expect(err.status).toBeGreaterThanOrEqual(400);
          expect(written.status).toBeUndefined();
        }
        for (const blob of blobs) expect(blob.released()).toBe(1);
      }),
      RUNS,
    );
  });
});
