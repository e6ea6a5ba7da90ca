// Failures talking to an upstream registry, with what a caller needs to decide: retry, serve stale, or report.

export interface UpstreamErrorDetail {
  code?: string;
  message?: string;
}

export class UpstreamError extends Error {
  readonly code = 'UPSTREAM_ERROR';
  /** HTTP status, or undefined when no response arrived (refused, reset, timeout). */
  readonly status: number | undefined;
  /** The registry error body's entries, when upstream sent one. */
  readonly errors: readonly UpstreamErrorDetail[];
  /** Worth retrying later: a network failure, a timeout, 429 or 5xx. */
  readonly temporary: boolean;
  /** Seconds from upstream's Retry-After, when it sent one. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    message: string,
    options: { status?: number; errors?: UpstreamErrorDetail[]; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'UpstreamError';
    this.status = options.status;
    this.errors = options.errors ?? [];
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.temporary = options.status === undefined || options.status === 429 || options.status >= 500;
  }
}

/** Upstream sent bytes that are not what it promised: wrong digest, wrong length, or a manifest too large. */
export class UpstreamContentError extends Error {
  readonly code = 'UPSTREAM_CONTENT_INVALID';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UpstreamContentError';
  }
}
