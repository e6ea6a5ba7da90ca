// Registry error codes (distribution-spec "Error Codes") and the one error type that carries them to a response.

/** Every code we answer with, and its HTTP status. One table: nothing else maps codes to statuses. */
export const REGISTRY_CODES = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_UNKNOWN: 404,
  MANIFEST_UNKNOWN: 404,
  NAME_UNKNOWN: 404,
  NAME_INVALID: 400,
  TAG_INVALID: 400,
  DIGEST_INVALID: 400,
  MANIFEST_INVALID: 400,
  SIZE_INVALID: 400,
  RANGE_INVALID: 416,
  PAGINATION_NUMBER_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  UNAVAILABLE: 503,
  UNKNOWN: 500,
  /** Not a distribution-spec code: a path that is no registry endpoint. */
  NOT_FOUND: 404,
  /** Not distribution-spec codes: a malformed admin API request (bad JSON, a missing field), or one too large. */
  BAD_REQUEST: 400,
  TOO_LARGE: 413,
} as const;

export type RegistryCode = keyof typeof REGISTRY_CODES;

export class RegistryError extends Error {
  readonly code: RegistryCode;
  readonly status: number;
  readonly detail: unknown;
  /** Extra response headers, e.g. Retry-After on TOOMANYREQUESTS. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: RegistryCode,
    message: string,
    options: { detail?: unknown; cause?: unknown; headers?: Record<string, string> } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'RegistryError';
    this.code = code;
    this.status = REGISTRY_CODES[code];
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }

  /** The body every registry client understands: {"errors":[{code,message,detail}]}. */
  toJSON(): { errors: Array<{ code: RegistryCode; message: string; detail: unknown }> } {
    return { errors: [{ code: this.code, message: this.message, detail: this.detail ?? null }] };
  }
}
