// RegistryError: one code→status table and the distribution-spec JSON error body.
import { describe, expect, it } from 'vitest';
import { REGISTRY_CODES, RegistryError, type RegistryCode } from '../../src/registry/errors.js';

describe('RegistryError status table', () => {
  it.each<[RegistryCode, number]>([
    ['BLOB_UNKNOWN', 404],
    ['BLOB_UPLOAD_UNKNOWN', 404],
    ['MANIFEST_UNKNOWN', 404],
    ['NAME_UNKNOWN', 404],
    ['NAME_INVALID', 400],
    ['TAG_INVALID', 400],
    ['DIGEST_INVALID', 400],
    ['MANIFEST_INVALID', 400],
    ['SIZE_INVALID', 400],
    ['RANGE_INVALID', 416],
    ['UNAUTHORIZED', 401],
    ['DENIED', 403],
    ['UNSUPPORTED', 405],
    ['TOOMANYREQUESTS', 429],
    ['UNAVAILABLE', 503],
    ['UNKNOWN', 500],
    ['NOT_FOUND', 404],
  ])('answers %s with HTTP %i', (code, status) => {
    expect(new RegistryError(code, 'x').status).toBe(status);
    expect(REGISTRY_CODES[code]).toBe(status);
  });
});

describe('RegistryError', () => {
  it('is an Error carrying its code, message, detail, cause and headers', () => {
    const cause = new Error('upstream said no');
    const err = new RegistryError('TOOMANYREQUESTS', 'slow down', {
      detail: { retryAfter: 30 },
      cause,
      headers: { 'retry-after': '30' },
    });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('RegistryError');
    expect(err.code).toBe('TOOMANYREQUESTS');
    expect(err.message).toBe('slow down');
    expect(err.detail).toEqual({ retryAfter: 30 });
    expect(err.cause).toBe(cause);
    expect(err.headers).toEqual({ 'retry-after': '30' });
  });

  it('has no extra headers unless given some', () => {
    expect(new RegistryError('UNKNOWN', 'x').headers).toEqual({});
  });

  it('renders the distribution-spec body {errors:[{code,message,detail}]}', () => {
    const err = new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { detail: { tag: 'latest' } });
    expect(err.toJSON()).toEqual({
      errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: { tag: 'latest' } }],
    });
  });

  it('renders a missing detail as null so the body always has all three fields', () => {
    const body = JSON.parse(JSON.stringify(new RegistryError('BLOB_UNKNOWN', 'blob unknown'))) as unknown;
    expect(body).toEqual({ errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown', detail: null }] });
  });
});
