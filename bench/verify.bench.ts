// Verify-while-streaming cost: our DigestVerifier against a bare sha256 over the same 64 MiB, in 256 KiB chunks
// (the read size of the blob paths). The ratio is what verification adds to a cold fill.
import { createHash } from 'node:crypto';
import { bench, describe } from 'vitest';
import { DigestVerifier } from '../src/cache/digest-verify.js';
import type { Digest } from '../src/registry/reference.js';

const CHUNK = 256 * 1024;
const chunks = Array.from({ length: 256 }, (_, i) => Buffer.alloc(CHUNK, i));
const digest = (() => {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return `sha256:${hash.digest('hex')}` as Digest;
})();

describe('sha256 over 64 MiB', () => {
  bench('crypto.createHash (the floor)', () => {
    const hash = createHash('sha256');
    for (const chunk of chunks) hash.update(chunk);
    hash.digest();
  });

  bench('DigestVerifier (size + digest checks)', () => {
    const verifier = new DigestVerifier(digest, CHUNK * chunks.length);
    for (const chunk of chunks) verifier.update(chunk);
    verifier.finish();
  });
});
