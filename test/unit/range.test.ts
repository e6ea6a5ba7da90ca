// Range header parsing against a known blob size (RFC 9110 §14.2) and the Content-Range it answers with.
import { describe, expect, it } from 'vitest';
import { contentRange, parseRange } from '../../src/http/range.js';
import { rangeLength } from '../../src/registry/byte-range.js';

describe('parseRange', () => {
  it('serves the full blob when there is no Range header', () => {
    expect(parseRange(undefined, 1000)).toEqual({ kind: 'full' });
  });

  it.each([
    ['bytes=0-99', 0, 99],
    ['bytes=900-', 900, 999],
    ['bytes=-100', 900, 999],
    ['bytes=-2000', 0, 999],
    ['bytes=0-5000', 0, 999],
    ['bytes=0-0', 0, 0],
    ['bytes=999-999', 999, 999],
    ['bytes=-1', 999, 999],
    ['bytes=0-', 0, 999],
    ['Bytes=10-19', 10, 19],
    [' bytes=10-19 ', 10, 19],
    ['bytes= 10 - 19', 10, 19],
  ])('resolves %j on a 1000-byte blob to bytes %i..%i', (header, start, end) => {
    expect(parseRange(header, 1000)).toEqual({ kind: 'partial', range: { start, end } });
  });

  it.each([
    ['bytes=1000-'],
    ['bytes=1000-1000'],
    ['bytes=5-1'],
    ['bytes=abc'],
    ['bytes='],
    ['bytes=-'],
    ['bytes=-0'],
    ['bytes=1.5-2'],
    ['bytes=-5-6'],
    ['bytes=99999999999999999999-'],
  ])('answers %j on a 1000-byte blob as unsatisfiable', (header) => {
    expect(parseRange(header, 1000)).toEqual({ kind: 'unsatisfiable' });
  });

  it.each([['items=0-1'], ['bytes=0-1,5-6'], ['bytes=0-1, 5-6'], ['0-1']])(
    'serves the full blob for %j, a range it does not serve partially',
    (header) => {
      expect(parseRange(header, 1000)).toEqual({ kind: 'full' });
    },
  );

  it('serves the full blob when the size is unknown, whatever the range', () => {
    expect(parseRange('bytes=0-99', undefined)).toEqual({ kind: 'full' });
    expect(parseRange('bytes=abc', undefined)).toEqual({ kind: 'full' });
  });

  it('answers any byte range on an empty blob as unsatisfiable', () => {
    expect(parseRange('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=-10', 0)).toEqual({ kind: 'unsatisfiable' });
  });

  it('resolves an open or over-long range on a one-byte blob to that byte', () => {
    expect(parseRange('bytes=0-', 1)).toEqual({ kind: 'partial', range: { start: 0, end: 0 } });
    expect(parseRange('bytes=-5', 1)).toEqual({ kind: 'partial', range: { start: 0, end: 0 } });
    expect(parseRange('bytes=0-5', 1)).toEqual({ kind: 'partial', range: { start: 0, end: 0 } });
  });
});

describe('contentRange', () => {
  it('formats an inclusive range and the total size as "bytes first-last/size"', () => {
    expect(contentRange({ start: 0, end: 99 }, 1000)).toBe('bytes 0-99/1000');
    expect(contentRange({ start: 900, end: 999 }, 1000)).toBe('bytes 900-999/1000');
  });

  it('round-trips a parsed range into the header a client expects', () => {
    const parsed = parseRange('bytes=-100', 1000);
    if (parsed.kind !== 'partial') throw new Error(`expected partial, got ${parsed.kind}`);
    expect(contentRange(parsed.range, 1000)).toBe('bytes 900-999/1000');
    expect(rangeLength(parsed.range)).toBe(100);
  });
});
