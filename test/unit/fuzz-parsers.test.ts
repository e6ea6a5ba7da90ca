// Property-based fuzzing (issue 14) of the parsers that read what clients, upstreams and bundles send: each
// answers a valid result or a RegistryError (ManifestError for manifest bytes), never another exception, and
// a valid result's canonical form parses to itself. numRuns keeps each property well under 2 s in CI.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { contentRange, parseRange } from '../../src/http/range.js';
import { RegistryError } from '../../src/registry/errors.js';
import { blobsOf, manifestRefs, ManifestError, parseManifest, sniffMediaType } from '../../src/registry/manifest.js';
import { acceptClass, isMediaType, MANIFEST_TYPES } from '../../src/registry/media-types.js';
import { parseDigest, parseImageReference, parseManifestReference, parseRegistryHost, parseRepository, parseTag, registryPrefix } from '../../src/registry/reference.js';
import { tagPage } from '../../src/registry/tag-page.js';

/** FUZZ_RUNS=20000 for a longer local hunt; CI keeps the default. */
const RUNS = { numRuns: Number(process.env.FUZZ_RUNS ?? 400) };

/** Runs `parse`; a RegistryError is an answer, anything else thrown fails the property. */
function registryAnswer<T>(parse: () => T): T | RegistryError {
  try {
    return parse();
  } catch (err) {
    if (err instanceof RegistryError) return err;
    throw err;
  }
}

// Text a hostile client might send: any code point (lone surrogates, U+2028, NUL), or pieces of real syntax.
const anyText = fc.string({ unit: 'binary', maxLength: 300 });
const syntax = fc.constantFrom('/', ':', '@', '.', '-', '_', '__', '..', '%2e', '%2F', 'sha256:', 'sha512:', 'a', 'Z', '0', 'library', 'docker.io', 'localhost', 'localhost:5000', 'ghcr.io', '\\', ' ', '\r\n', '\u2028', '\0', '?', '#');
const syntaxText = fc.array(fc.oneof(syntax, fc.string({ maxLength: 4 })), { maxLength: 30 }).map((parts) => parts.join(''));
const hostile = fc.oneof(anyText, syntaxText);

// Valid pieces, to make the round-trip properties non-vacuous.
const component = fc.stringMatching(/^[a-z0-9]{1,6}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,6}){0,2}$/);
const path = fc.array(component, { minLength: 1, maxLength: 4 }).map((c) => c.join('/'));
const tag = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,20}$/);
const hex = (n: number) => fc.stringMatching(new RegExp(`^[a-f0-9]{${n}}$`));
const digest = fc.oneof(hex(64).map((h) => `sha256:${h}`), hex(128).map((h) => `sha512:${h}`));
const hostWith = (port: fc.Arbitrary<number>) =>
  fc.oneof(
    fc.constantFrom('docker.io', 'index.docker.io', 'registry-1.docker.io', 'ghcr.io', 'localhost', 'localhost:5000', 'Quay.IO', '10.0.0.5:5000'),
    fc.tuple(fc.stringMatching(/^[a-z0-9]{1,8}$/), fc.stringMatching(/^[a-z]{2,5}$/), fc.option(port)).map(([a, b, p]) => `${a}.${b}${p === null ? '' : `:${p}`}`),
  );
const validHost = hostWith(fc.integer({ min: 1, max: 65535 }));
/** Also ports no URL takes, and numeric labels: refused or canonical, never passed on. */
const host = fc.oneof(hostWith(fc.integer({ min: 0, max: 99999 })), fc.constantFrom('1.2', '010.0.0.1', '256.1.1.1', '1.2.3.4:80', '0x7f.1'));
const reference = fc
  .tuple(fc.option(validHost), path, fc.option(tag), fc.option(digest))
  // Without a host, a first component that looks like one (a `.`) would be read as a registry: name Docker Hub.
  .map(([h, p, t, d]) => [h ?? (p.includes('/') && p.split('/')[0]?.includes('.') ? 'docker.io' : null), p, t, d] as const)
  .map(([h, p, t, d]) => `${h === null ? '' : `${h}/`}${p}${t === null ? '' : `:${t}`}${d === null ? '' : `@${d}`}`);

describe('fuzzing the reference parsers', () => {
  it('parseRepository answers a grammatical name or NAME_INVALID, and is idempotent', () => {
    fc.assert(
      fc.property(fc.oneof(hostile, path), fc.oneof(fc.constant('docker.io'), host, hostile), (name, registry) => {
        const repo = registryAnswer(() => parseRepository(name, registry));
        if (repo instanceof RegistryError) {
          expect(repo.code).toBe('NAME_INVALID');
          return;
        }
        expect(repo.length).toBeLessThanOrEqual(255);
        expect(repo.split('/').every((c) => /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/.test(c))).toBe(true);
        expect(parseRepository(repo, registry)).toBe(repo);
      }),
      RUNS,
    );
  });

  it('parseImageReference answers a reference or a RegistryError; the canonical form parses to itself', () => {
    fc.assert(
      fc.property(fc.oneof(hostile, reference, fc.tuple(host, path).map(([h, p]) => `${h}/${p}`)), (text) => {
        const ref = registryAnswer(() => parseImageReference(text));
        if (ref instanceof RegistryError) {
          expect(['NAME_INVALID', 'TAG_INVALID', 'DIGEST_INVALID']).toContain(ref.code);
          return;
        }
        expect(parseImageReference(ref.canonical)).toEqual(ref);
        expect(ref.canonical.startsWith(`${ref.registry}/${ref.repo}`)).toBe(true);
        expect(ref.tag !== undefined || ref.digest !== undefined).toBe(true);
        expect(parseRegistryHost(ref.registry)).toBe(ref.registry);
      }),
      RUNS,
    );
  });

  it('a reference written from valid parts always parses', () => {
    fc.assert(fc.property(reference, (text) => void parseImageReference(text)), RUNS);
  });

  it('parseDigest, parseTag and parseManifestReference answer the value itself or their own error code', () => {
    fc.assert(
      fc.property(fc.oneof(hostile, digest, tag), (text) => {
        const d = registryAnswer(() => parseDigest(text));
        expect(d instanceof RegistryError ? d.code : d).toBe(d instanceof RegistryError ? 'DIGEST_INVALID' : text);
        const t = registryAnswer(() => parseTag(text));
        expect(t instanceof RegistryError ? t.code : t).toBe(t instanceof RegistryError ? 'TAG_INVALID' : text);
        const r = registryAnswer(() => parseManifestReference(text));
        if (!(r instanceof RegistryError)) expect('digest' in r ? r.digest : r.tag).toBe(text);
      }),
      RUNS,
    );
  });

  it('parseRegistryHost and registryPrefix answer a canonical host or NAME_INVALID', () => {
    fc.assert(
      fc.property(fc.oneof(hostile, host), fc.oneof(hostile, path), (h, rest) => {
        const parsed = registryAnswer(() => parseRegistryHost(h));
        if (parsed instanceof RegistryError) expect(parsed.code).toBe('NAME_INVALID');
        else {
          expect(parseRegistryHost(parsed)).toBe(parsed);
          // It becomes an upstream URL's host: one that URL refuses (port 99999) must be refused here.
          expect(new URL(`https://${parsed}/v2/`).host).toBe(parsed.replace(/:443$/, ''));
        }
        const prefix = registryAnswer(() => registryPrefix(`${h}/${rest}`));
        if (prefix instanceof RegistryError) expect(prefix.code).toBe('NAME_INVALID');
        else if (prefix) expect(parseRegistryHost(prefix.registry)).toBe(prefix.registry);
      }),
      // Found by this property (issue 14): a port over 65535, a numeric label that URL reads as another address.
      { ...RUNS, examples: [['0.aa:65536', ''], ['1.2', 'a'], ['localhost:0', 'a']] },
    );
  });
});

describe('fuzzing Range', () => {
  const rangeHeader = fc.oneof(
    hostile,
    fc.tuple(fc.constantFrom('bytes=', 'BYTES=', 'bytes =', 'items='), fc.option(fc.bigInt({ min: 0n, max: 10n ** 25n })), fc.option(fc.bigInt({ min: 0n, max: 10n ** 25n })), fc.constantFrom('', ',0-1', ' ', '\t')).map(
      ([unit, a, b, tail]) => `${unit}${a ?? ''}-${b ?? ''}${tail}`,
    ),
  );

  it('parseRange answers full, unsatisfiable or a range inside the blob', () => {
    fc.assert(
      fc.property(fc.option(rangeHeader, { nil: undefined }), fc.option(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), { nil: undefined }), (header, size) => {
        const answer = parseRange(header, size);
        if (answer.kind !== 'partial') return;
        const { start, end } = answer.range;
        expect(size).toBeDefined();
        expect(Number.isSafeInteger(start) && Number.isSafeInteger(end)).toBe(true);
        expect(0 <= start && start <= end && end < (size as number)).toBe(true);
        expect(contentRange(answer.range, size as number)).toMatch(/^bytes \d+-\d+\/\d+$/);
      }),
      RUNS,
    );
  });
});

describe('fuzzing Accept', () => {
  const element = fc.oneof(fc.constantFrom(...MANIFEST_TYPES, '*/*', 'application/*', 'application/json', ''), hostile);
  const param = fc.constantFrom('', ';q=0', ';q=0.0', ';q=1', ';q=abc', '; q=0.5', ';level=1');
  const accept = fc.array(fc.tuple(element, param).map(([e, p]) => e + p), { maxLength: 8 }).map((parts) => parts.join(', '));

  it('acceptClass never throws, and its key names exactly the manifest types it accepts', () => {
    fc.assert(
      fc.property(fc.oneof(accept, hostile, fc.array(accept, { maxLength: 3 })), (header) => {
        const cls = acceptClass(header);
        expect(acceptClass(header)).toBe(cls);
        const accepted = MANIFEST_TYPES.filter((t) => cls.accepts(t));
        if (cls.key === '*') expect(accepted).toEqual([...MANIFEST_TYPES]);
        else expect(cls.key).toBe(accepted.length === 0 ? 'none' : accepted.map((t) => MANIFEST_TYPES.indexOf(t)).join(''));
      }),
      RUNS,
    );
  });
});

describe('fuzzing tag pages', () => {
  const tags = fc.uniqueArray(tag, { maxLength: 40 }).map((t) => [...t].sort());
  const query = fc.oneof(
    hostile.map((q) => `?${q}`),
    fc.tuple(fc.option(fc.oneof(fc.nat(50).map(String), hostile)), fc.option(fc.oneof(tag, hostile))).map(([n, last]) => {
      const params = new URLSearchParams();
      if (n !== null) params.set('n', n);
      if (last !== null) params.set('last', last);
      return `?${params.toString()}`;
    }),
  );

  it('answers tags in order after `last`, at most n, or PAGINATION_NUMBER_INVALID', () => {
    fc.assert(
      fc.property(path, tags, query, (name, all, q) => {
        const page = registryAnswer(() => tagPage(name, all, q));
        if (page instanceof RegistryError) {
          expect(page.code).toBe('PAGINATION_NUMBER_INVALID');
          return;
        }
        const body = JSON.parse(page.body.toString()) as { name: string; tags: string[] };
        const last = new URLSearchParams(q).get('last');
        expect(body.name).toBe(name);
        expect(body.tags).toEqual(all.filter((t) => last === null || t > last).slice(0, body.tags.length));
      }),
      RUNS,
    );
  });

  it('following the next links from any page size lists every tag once', () => {
    fc.assert(
      fc.property(path, tags, fc.integer({ min: 1, max: 12 }), (name, all, n) => {
        const seen: string[] = [];
        let q = `?n=${n}`;
        for (let pages = 0; pages <= all.length + 1; pages++) {
          const page = tagPage(name, all, q);
          const body = JSON.parse(page.body.toString()) as { tags: string[] };
          seen.push(...body.tags);
          if (!page.link) break;
          const target = /^<([^>]*)>; rel="next"$/.exec(page.link)?.[1] ?? '';
          expect(target.startsWith(`/v2/${name}/tags/list?`)).toBe(true);
          q = target.slice(target.indexOf('?'));
        }
        expect(seen).toEqual(all);
      }),
      RUNS,
    );
  });
});

describe('fuzzing the manifest parser', () => {
  const descriptor = fc.record(
    {
      mediaType: fc.oneof(fc.constantFrom(...MANIFEST_TYPES, 'application/vnd.oci.image.layer.v1.tar'), hostile, fc.integer()),
      digest: fc.oneof(digest, hostile, fc.constant(null)),
      size: fc.oneof(fc.nat(), fc.integer({ min: -5, max: -1 }), fc.double(), fc.constant(1e300), fc.string()),
      platform: fc.oneof(fc.record({ os: fc.string(), architecture: fc.oneof(fc.string(), fc.integer()) }), fc.string(), fc.constant(null)),
      annotations: fc.oneof(fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.constant(null))), fc.constant([])),
    },
    { requiredKeys: [] },
  );
  const list = fc.oneof(fc.array(fc.oneof(descriptor, fc.anything()), { maxLength: 5 }), fc.anything());
  const manifest = fc.record(
    { schemaVersion: fc.oneof(fc.constantFrom(1, 2), fc.anything()), mediaType: fc.oneof(fc.constantFrom(...MANIFEST_TYPES), hostile), manifests: list, config: fc.oneof(descriptor, fc.anything()), layers: list, blobs: list, fsLayers: fc.anything() },
    { requiredKeys: [] },
  );
  const bytes = fc.oneof(manifest.map((m) => JSON.stringify(m)), fc.json(), hostile, fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)));

  it('answers a manifest of well-typed descriptors or a ManifestError', () => {
    fc.assert(
      fc.property(bytes, (input) => {
        let parsed;
        try {
          parsed = parseManifest(input);
        } catch (err) {
          if (err instanceof ManifestError) return;
          throw err;
        }
        for (const d of [...(parsed.manifests ?? []), ...blobsOf(parsed, true)]) {
          expect(d.digest).toMatch(/^sha(256|512):[a-f0-9]+$/);
          if (d.size !== undefined) expect(Number.isSafeInteger(d.size) && d.size >= 0).toBe(true);
          if (d.mediaType !== undefined) expect(typeof d.mediaType).toBe('string');
          for (const value of Object.values(d.annotations ?? {})) expect(typeof value).toBe('string');
          for (const value of Object.values(d.platform ?? {})) expect(typeof value).toBe('string');
        }
        sniffMediaType(parsed);
        manifestRefs(Buffer.from(input));
      }),
      // Found by this property (issue 14): annotations that are no strings, sizes that are no byte counts.
      { ...RUNS, examples: [[`{"layers":[{"digest":"sha256:${'a'.repeat(64)}","size":-1,"annotations":{"k":0}}]}`]] },
    );
  });

  it('isMediaType takes only RFC 6838 type/subtype', () => {
    fc.assert(
      fc.property(fc.oneof(hostile, fc.constantFrom(...MANIFEST_TYPES)), (text) => {
        if (isMediaType(text)) expect(text).toMatch(/^[A-Za-z0-9][\w!#$&^.+-]*\/[A-Za-z0-9][\w!#$&^.+-]*$/);
      }),
      RUNS,
    );
  });
});
