// Repository, tag and digest parsing: the distribution grammar, Docker Hub normalization, and every rejection code.
import { describe, expect, it } from 'vitest';
import { RegistryError } from '../../src/registry/errors.js';
import { manifestRefs } from '../../src/registry/manifest.js';
import {
  digestAlgorithm,
  digestHex,
  isDigest,
  parseDigest,
  parseImageReference,
  parseManifestReference,
  parseRepository,
  parseTag,
  type Digest,
} from '../../src/registry/reference.js';

const HEX64 = 'a'.repeat(64);
const HEX128 = '0123456789abcdef'.repeat(8);

function registryErrorOf(fn: () => unknown): RegistryError {
  try {
    fn();
  } catch (err) {
    if (err instanceof RegistryError) return err;
    throw new Error(`expected a RegistryError, got ${String(err)}`);
  }
  throw new Error('expected a RegistryError, but nothing was thrown');
}

describe('parseRepository', () => {
  it('prefixes a single-component official image with library/', () => {
    expect(parseRepository('alpine')).toBe('library/alpine');
  });

  it('leaves a user repository unchanged', () => {
    expect(parseRepository('someuser/app')).toBe('someuser/app');
  });

  it('leaves an explicit library/ repository unchanged instead of prefixing it again', () => {
    expect(parseRepository('library/alpine')).toBe('library/alpine');
  });

  it('accepts names with three or more components', () => {
    expect(parseRepository('a/b/c')).toBe('a/b/c');
    expect(parseRepository('org/team/sub/app')).toBe('org/team/sub/app');
  });

  it.each(['a.b', 'a_b', 'a__b', 'a-b', 'a--b', 'a---b', 'my-org/my_app.v2', '0', 'x9/y8'])(
    'accepts the separators and alphanumerics of the grammar in %j',
    (name) => {
      const parsed = parseRepository(name);
      expect(parsed.endsWith(name)).toBe(true);
    },
  );

  it.each([
    ['..'],
    ['.'],
    ['%2e%2e'],
    ['a/%2e%2e/b'],
    ['a//b'],
    ['/a'],
    ['a/'],
    ['A'],
    ['Alpine'],
    ['someuser/App'],
    ['a\\b'],
    ['a/../b'],
    ['a/./b'],
    ['-a'],
    ['a-'],
    ['.a'],
    ['a.'],
    ['_a'],
    ['a_'],
    ['a..b'],
    ['a___b'],
    ['a._b'],
    ['a b'],
    ['a:b'],
    ['a@b'],
    [''],
    ['/'],
  ])('rejects %j with NAME_INVALID (400)', (name) => {
    const err = registryErrorOf(() => parseRepository(name));
    expect(err.code).toBe('NAME_INVALID');
    expect(err.status).toBe(400);
  });

  it('accepts a multi-component name of exactly 255 characters', () => {
    const name = `a/${'b'.repeat(253)}`;
    expect(name).toHaveLength(255);
    expect(parseRepository(name)).toBe(name);
  });

  it('rejects a name of 256 characters with NAME_INVALID', () => {
    const name = `a/${'b'.repeat(254)}`;
    expect(name).toHaveLength(256);
    expect(registryErrorOf(() => parseRepository(name)).code).toBe('NAME_INVALID');
  });

  it('rejects a single component that only exceeds 255 characters once library/ is prepended', () => {
    const name = 'a'.repeat(250);
    expect(registryErrorOf(() => parseRepository(name)).code).toBe('NAME_INVALID');
  });

  it('accepts a single component that is exactly 255 characters with library/ prepended', () => {
    const name = 'a'.repeat(255 - 'library/'.length);
    expect(parseRepository(name)).toHaveLength(255);
  });
});

describe('parseTag', () => {
  it.each(['latest', '3.19', '1.0.0-rc.1', '_private', 'A', 'V1_x', '0', 'a'.repeat(128)])('accepts %j', (tag) => {
    expect(parseTag(tag)).toBe(tag);
  });

  it.each([
    ['a'.repeat(129)],
    ['.a'],
    ['-a'],
    [''],
    ['a:b'],
    ['a/b'],
    ['a b'],
    ['a@b'],
    ['latest\n'],
  ])('rejects %j with TAG_INVALID (400)', (tag) => {
    const err = registryErrorOf(() => parseTag(tag));
    expect(err.code).toBe('TAG_INVALID');
    expect(err.status).toBe(400);
  });
});

describe('parseDigest', () => {
  it('accepts sha256 with 64 lowercase hex digits', () => {
    expect(parseDigest(`sha256:${HEX64}`)).toBe(`sha256:${HEX64}`);
  });

  it('accepts sha512 with 128 lowercase hex digits', () => {
    expect(parseDigest(`sha512:${HEX128}`)).toBe(`sha512:${HEX128}`);
  });

  it.each([
    ['uppercase hex', `sha256:${'A'.repeat(64)}`],
    ['63 hex digits', `sha256:${'a'.repeat(63)}`],
    ['65 hex digits', `sha256:${'a'.repeat(65)}`],
    ['sha512 with 64 hex digits', `sha512:${HEX64}`],
    ['sha256 with 128 hex digits', `sha256:${HEX128}`],
    ['sha512 with 127 hex digits', `sha512:${HEX128.slice(1)}`],
    ['an md5 algorithm', `md5:${'a'.repeat(32)}`],
    ['an empty sha256 hex', 'sha256:'],
    ['a trailing newline', `sha256:${HEX64}\n`],
    ['a leading space', ` sha256:${HEX64}`],
    ['an uppercase algorithm', `SHA256:${HEX64}`],
    ['no algorithm', HEX64],
    ['a non-hex digit', `sha256:${'g'.repeat(64)}`],
    ['the empty string', ''],
  ])('rejects %s with DIGEST_INVALID (400)', (_label, value) => {
    const err = registryErrorOf(() => parseDigest(value));
    expect(err.code).toBe('DIGEST_INVALID');
    expect(err.status).toBe(400);
    expect(isDigest(value)).toBe(false);
  });
});

describe('parseManifestReference', () => {
  it('returns a tag for a reference without a colon', () => {
    expect(parseManifestReference('3.19')).toEqual({ tag: '3.19' });
  });

  it('returns a digest for a valid digest reference', () => {
    expect(parseManifestReference(`sha256:${HEX64}`)).toEqual({ digest: `sha256:${HEX64}` });
  });

  it('rejects a digest-shaped reference with an unknown algorithm as DIGEST_INVALID rather than as a tag', () => {
    expect(registryErrorOf(() => parseManifestReference(`md5:${'a'.repeat(32)}`)).code).toBe('DIGEST_INVALID');
  });

  it('rejects a truncated digest reference as DIGEST_INVALID', () => {
    expect(registryErrorOf(() => parseManifestReference('sha256:abc')).code).toBe('DIGEST_INVALID');
  });

  it('rejects an invalid tag reference as TAG_INVALID', () => {
    expect(registryErrorOf(() => parseManifestReference('-bad')).code).toBe('TAG_INVALID');
  });
});

describe('digestAlgorithm and digestHex', () => {
  it('splits a sha256 digest into its algorithm and hex', () => {
    const digest = parseDigest(`sha256:${HEX64}`);
    expect(digestAlgorithm(digest)).toBe('sha256');
    expect(digestHex(digest)).toBe(HEX64);
  });

  it('splits a sha512 digest into its algorithm and hex', () => {
    const digest: Digest = parseDigest(`sha512:${HEX128}`);
    expect(digestAlgorithm(digest)).toBe('sha512');
    expect(digestHex(digest)).toBe(HEX128);
  });
});

describe('parseImageReference', () => {
  it.each([
    ['alpine', 'docker.io/library/alpine:latest'],
    ['alpine:3.19', 'docker.io/library/alpine:3.19'],
    ['docker.io/library/nginx:1.25', 'docker.io/library/nginx:1.25'],
    ['index.docker.io/someuser/app:v1', 'docker.io/someuser/app:v1'],
    ['ghcr.io/org/tool:2', 'ghcr.io/org/tool:2'],
    ['localhost:5000/x/y', 'localhost:5000/x/y:latest'],
    [`alpine:3.19@sha256:${'a'.repeat(64)}`, `docker.io/library/alpine@sha256:${'a'.repeat(64)}`],
  ])('%s is %s', (text, canonical) => {
    expect(parseImageReference(text).canonical).toBe(canonical);
  });

  it.each(['', 'Alpine:3', 'alpine:bad tag', 'alpine@sha256:12', '../x'])('refuses %j', (text) => {
    expect(() => parseImageReference(text)).toThrow(RegistryError);
  });
});

describe('manifestRefs', () => {
  it('names the platform manifests of an index and the config and layers of an image; nothing for junk', () => {
    const d = (c: string) => `sha256:${c.repeat(64)}`;
    expect(manifestRefs(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ digest: d('a') }, { digest: 'bogus' }] })))).toEqual({ manifests: [d('a')], blobs: [] });
    expect(manifestRefs(Buffer.from(JSON.stringify({ config: { digest: d('b') }, layers: [{ digest: d('c') }] })))).toEqual({ manifests: [], blobs: [d('b'), d('c')] });
    expect(manifestRefs(Buffer.from('not json'))).toEqual({ manifests: [], blobs: [] });
    expect(manifestRefs(Buffer.from('null'))).toEqual({ manifests: [], blobs: [] });
  });
});
