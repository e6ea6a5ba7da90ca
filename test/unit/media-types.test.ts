// Accept negotiation for manifests: a stable key per set of accepted types, and what each class may be served.
import { describe, expect, it } from 'vitest';
import {
  acceptClass,
  DOCKER_LIST,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_V1,
  DOCKER_MANIFEST_V1_SIGNED,
  MANIFEST_TYPES,
  OCI_INDEX,
  OCI_MANIFEST,
} from '../../src/registry/media-types.js';

describe('acceptClass key', () => {
  it('is the same whatever order the client lists its types in', () => {
    const a = acceptClass(`${OCI_INDEX}, ${DOCKER_MANIFEST}, ${OCI_MANIFEST}`);
    const b = acceptClass(`${DOCKER_MANIFEST},${OCI_MANIFEST},${OCI_INDEX}`);
    expect(a.key).toBe(b.key);
    expect(a.key).not.toBe('*');
  });

  it('ignores q-values and other media-type parameters', () => {
    const plain = acceptClass(`${OCI_INDEX}, ${DOCKER_MANIFEST}`);
    const weighted = acceptClass(`${DOCKER_MANIFEST}; q=0.5, ${OCI_INDEX};q=0.9;charset=utf-8`);
    expect(weighted.key).toBe(plain.key);
  });

  it('ignores the case of media types', () => {
    expect(acceptClass(DOCKER_MANIFEST.toUpperCase()).key).toBe(acceptClass(DOCKER_MANIFEST).key);
  });

  it('ignores duplicated types', () => {
    expect(acceptClass(`${OCI_INDEX}, ${OCI_INDEX}, ${DOCKER_LIST}`).key).toBe(acceptClass(`${DOCKER_LIST}, ${OCI_INDEX}`).key);
  });

  it('ignores unknown types beside known ones', () => {
    expect(acceptClass(`application/json, ${DOCKER_MANIFEST}, text/html`).key).toBe(acceptClass(DOCKER_MANIFEST).key);
  });

  it('gives a different key to every distinct set of known manifest types', () => {
    const sets: string[][] = [];
    for (let mask = 1; mask < 2 ** MANIFEST_TYPES.length; mask++) {
      sets.push(MANIFEST_TYPES.filter((_, i) => (mask & (1 << i)) !== 0));
    }
    const keys = new Set(sets.map((types) => acceptClass(types.join(', ')).key));
    expect(keys.size).toBe(sets.length);
    expect(keys.has('*')).toBe(false);
  });

  it('gives a client that accepts only unknown types a key distinct from every known set and from *', () => {
    const unknownOnly = acceptClass('application/json');
    expect(unknownOnly.key).not.toBe('*');
    expect(unknownOnly.key).not.toBe(acceptClass(DOCKER_MANIFEST).key);
    expect(unknownOnly.accepts(DOCKER_MANIFEST)).toBe(false);
    expect(unknownOnly.accepts(OCI_INDEX)).toBe(false);
  });
});

describe('acceptClass wildcard and absence', () => {
  it('treats */* as accepting anything, under key *', () => {
    const cls = acceptClass('*/*');
    expect(cls.key).toBe('*');
    expect(cls.header).toBe('*/*');
    for (const type of [...MANIFEST_TYPES, 'application/octet-stream']) expect(cls.accepts(type)).toBe(true);
  });

  it('treats */* beside specific types as accepting anything', () => {
    const cls = acceptClass(`${DOCKER_MANIFEST}, */*;q=0.1`);
    expect(cls.key).toBe('*');
    expect(cls.accepts(OCI_INDEX)).toBe(true);
  });

  it('treats a missing header as accepting anything and sends no Accept upstream', () => {
    const cls = acceptClass(undefined);
    expect(cls.key).toBe('*');
    expect(cls.header).toBeUndefined();
    expect(cls.accepts(OCI_INDEX)).toBe(true);
    expect(cls.accepts(DOCKER_MANIFEST_V1_SIGNED)).toBe(true);
  });

  it('treats an empty or blank header like a missing one', () => {
    for (const header of ['', '   ', [] as string[]]) {
      const cls = acceptClass(header);
      expect(cls.key).toBe('*');
      expect(cls.header).toBeUndefined();
      expect(cls.accepts(DOCKER_LIST)).toBe(true);
    }
  });
});

describe('acceptClass accepts', () => {
  it('does not let a Docker schema2-only client be served an OCI index or a Docker manifest list', () => {
    const cls = acceptClass(DOCKER_MANIFEST);
    expect(cls.accepts(DOCKER_MANIFEST)).toBe(true);
    expect(cls.accepts(OCI_INDEX)).toBe(false);
    expect(cls.accepts(DOCKER_LIST)).toBe(false);
    expect(cls.accepts(OCI_MANIFEST)).toBe(false);
    expect(cls.accepts(DOCKER_MANIFEST_V1)).toBe(false);
  });

  it('accepts exactly the listed types, ignoring their parameters', () => {
    const cls = acceptClass(`${OCI_INDEX};q=0.5, ${OCI_MANIFEST}`);
    expect(cls.accepts(OCI_INDEX)).toBe(true);
    expect(cls.accepts(OCI_MANIFEST)).toBe(true);
    expect(cls.accepts(DOCKER_MANIFEST)).toBe(false);
  });

  it('passes the header through unchanged for the upstream request', () => {
    const header = `${OCI_INDEX};q=0.5, ${DOCKER_MANIFEST}`;
    expect(acceptClass(header).header).toBe(header);
  });
});

describe('acceptClass with repeated Accept headers', () => {
  it('joins an array of header values into one list', () => {
    const cls = acceptClass([DOCKER_MANIFEST, `${OCI_INDEX}, ${DOCKER_LIST}`]);
    expect(cls.key).toBe(acceptClass(`${DOCKER_LIST}, ${DOCKER_MANIFEST}, ${OCI_INDEX}`).key);
    expect(cls.header).toBe(`${DOCKER_MANIFEST},${OCI_INDEX}, ${DOCKER_LIST}`);
    expect(cls.accepts(DOCKER_MANIFEST)).toBe(true);
    expect(cls.accepts(OCI_INDEX)).toBe(true);
    expect(cls.accepts(DOCKER_LIST)).toBe(true);
    expect(cls.accepts(OCI_MANIFEST)).toBe(false);
  });

  it('treats */* in any one of several headers as accepting anything', () => {
    expect(acceptClass([DOCKER_MANIFEST, '*/*']).key).toBe('*');
  });
});

describe('acceptClass q-values and media ranges', () => {
  it('treats a type refused with q=0 as not accepted', () => {
    const accept = acceptClass(`${OCI_INDEX};q=0, ${DOCKER_MANIFEST}`);
    expect(accept.accepts(OCI_INDEX)).toBe(false);
    expect(accept.key).toBe(acceptClass(DOCKER_MANIFEST).key);
  });

  it('accepts every manifest type under application/*', () => {
    const accept = acceptClass('application/*');
    for (const type of MANIFEST_TYPES) expect(accept.accepts(type)).toBe(true);
    expect(accept.key).not.toBe('none');
  });
});
