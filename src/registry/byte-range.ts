// A resolved, inclusive byte range of a blob (RFC 9110 §14.1.2), independent of how HTTP spelled it.

export interface ByteRange {
  /** First byte, inclusive. */
  readonly start: number;
  /** Last byte, inclusive. */
  readonly end: number;
}

export function rangeLength(range: ByteRange): number {
  return range.end - range.start + 1;
}
