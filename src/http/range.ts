// The Range request header for blobs (RFC 9110 §14.2): one byte range, resolved against the blob's size.
import type { ByteRange } from '../registry/byte-range.js';

export type RangeRequest =
  | { kind: 'full' }
  | { kind: 'partial'; range: ByteRange }
  /** 416: syntactically a byte range, but none of it lies within the blob. */
  | { kind: 'unsatisfiable' };

const SINGLE_RANGE = /^bytes=(\d*)-(\d*)$/;

/**
 * Parses a Range header. Anything we do not serve partially (no header, another unit, several ranges, or an
 * unknown size) is a full response, as the RFC allows; a malformed or out-of-bounds byte range is 416.
 */
export function parseRange(header: string | undefined, size: number | undefined): RangeRequest {
  if (header === undefined || size === undefined) return { kind: 'full' };
  const value = header.trim();
  if (!value.toLowerCase().startsWith('bytes=') || value.includes(',')) return { kind: 'full' };
  const match = SINGLE_RANGE.exec(value.replace(/\s+/g, '').replace(/^bytes=/i, 'bytes='));
  if (!match) return { kind: 'unsatisfiable' };
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return { kind: 'unsatisfiable' };
  if (first === '') {
    // Suffix range: the last N bytes.
    const length = Number(last);
    if (length === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', range: { start: Math.max(0, size - length), end: size - 1 } };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (!Number.isSafeInteger(start) || start >= size || (last !== '' && Number(last) < start)) {
    return { kind: 'unsatisfiable' };
  }
  return { kind: 'partial', range: { start, end } };
}

export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`;
}
