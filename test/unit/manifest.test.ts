// Parsing manifest JSON once into typed descriptors: what each field becomes, and bad manifests as typed errors.
import { describe, expect, it } from 'vitest';
import { blobsOf, checkDescriptors, ManifestError, parseManifest, sniffMediaType, tryParseManifest } from '../../src/registry/manifest.js';
import { DOCKER_MANIFEST, DOCKER_MANIFEST_V1_SIGNED, OCI_INDEX, OCI_MANIFEST } from '../../src/registry/media-types.js';
import type { Digest } from '../../src/registry/reference.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const json = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('parseManifest', () => {
  it('reads an index into platform descriptors with media type, size, platform and annotations', () => {
    const index = parseManifest(
      json({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          { mediaType: OCI_MANIFEST, digest: d('a'), size: 500, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, annotations: { k: 'v' } },
          { mediaType: OCI_MANIFEST, digest: d('b'), size: 501, platform: { os: 'linux', architecture: 'amd64', extra: 1 } },
        ],
      }),
    );
    expect(index.schemaVersion).toBe(2);
    expect(index.mediaType).toBe(OCI_INDEX);
    expect(index.manifests).toEqual([
      { mediaType: OCI_MANIFEST, digest: d('a'), size: 500, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, annotations: { k: 'v' } },
      { mediaType: OCI_MANIFEST, digest: d('b'), size: 501, platform: { os: 'linux', architecture: 'amd64' } },
    ]);
    expect(index.config).toBeUndefined();
    expect(index.layers).toBeUndefined();
    expect(index.invalid).toEqual([]);
  });

  it('reads an image manifest into config and layers, in order; artifact blobs only when asked', () => {
    const image = parseManifest(
      json({ schemaVersion: 2, mediaType: DOCKER_MANIFEST, config: { digest: d('c'), size: 10 }, layers: [{ digest: d('1'), size: 1 }, { digest: d('2'), size: 2 }], blobs: [{ digest: d('3') }] }),
    );
    expect(image.manifests).toBeUndefined();
    expect(blobsOf(image, false).map((x) => x.digest)).toEqual([d('c'), d('1'), d('2')]);
    expect(blobsOf(image, true).map((x) => x.digest)).toEqual([d('c'), d('1'), d('2'), d('3')]);
  });

  it('keeps a descriptor without a size (walked by digest) and sets aside entries without a valid digest', () => {
    const m = parseManifest(json({ manifests: [{ digest: d('a') }, { digest: 'bogus' }, 'junk', null], layers: [{ digest: 7 }] }));
    expect(m.manifests).toEqual([{ digest: d('a') }]);
    expect(m.layers).toEqual([]);
    expect(m.invalid).toEqual(['bogus', undefined, undefined, 7]);
    expect(() => checkDescriptors(m, d('f'))).toThrow(ManifestError);
    expect(() => checkDescriptors(parseManifest(json({ layers: [{ digest: d('1') }] })))).not.toThrow();
  });

  it('refuses bytes that are not JSON with a typed error carrying a stable code, not a SyntaxError', () => {
    let caught: unknown;
    try {
      parseManifest(Buffer.from('{"schemaVersion": 2,'), d('e'));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ManifestError);
    expect(caught).not.toBeInstanceOf(SyntaxError);
    const error = caught as ManifestError;
    expect(error.code).toBe('BAD_MANIFEST');
    expect(error.problem).toBe('not-json');
    expect(error.digest).toBe(d('e'));
    expect(error.message).toBe(`manifest ${d('e')}: not JSON`);
    expect(error.cause).toBeInstanceOf(SyntaxError);
  });

  it('refuses JSON that is not an object (null, an array, a number)', () => {
    for (const text of ['null', '[]', '42', '"text"']) {
      expect(() => parseManifest(Buffer.from(text))).toThrow(expect.objectContaining({ code: 'BAD_MANIFEST', problem: 'not-object' }));
      expect(tryParseManifest(Buffer.from(text))).toBeUndefined();
    }
    expect(tryParseManifest(Buffer.from('not json'))).toBeUndefined();
    expect(tryParseManifest('{"mediaType":"x"}')?.mediaType).toBe('x');
  });
});

describe('sniffMediaType', () => {
  const sniff = (value: unknown) => sniffMediaType(parseManifest(json(value)));

  it('tells a manifest found on disk by what it declares or by its shape', () => {
    expect(sniff({ schemaVersion: 2, mediaType: DOCKER_MANIFEST, config: { digest: d('c') }, layers: [] })).toBe(DOCKER_MANIFEST);
    expect(sniff({ schemaVersion: 2, manifests: [] })).toBe(OCI_INDEX);
    expect(sniff({ schemaVersion: 2, config: { digest: d('c') }, layers: [] })).toBe(OCI_MANIFEST);
    expect(sniff({ schemaVersion: 1, fsLayers: [] })).toBe(DOCKER_MANIFEST_V1_SIGNED);
  });

  it('says nothing for JSON that is no manifest', () => {
    expect(sniff({ architecture: 'amd64', rootfs: {} })).toBeUndefined();
    expect(sniff({ schemaVersion: 2 })).toBeUndefined();
    expect(sniff({ schemaVersion: 1 })).toBeUndefined();
  });
});
