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

/**
 * Our own queue to upstream is full: refused at once with a short Retry-After instead of waiting behind work that
 * may never finish (issue 14, finding 6). Says nothing about upstream's health, so the breaker ignores it.
 */
export class UpstreamBusyError extends UpstreamError {
  constructor(queued: number) {
    super(`upstream request queue full (${queued} waiting)`, { status: 503, retryAfterSeconds: BUSY_RETRY_AFTER_SECONDS });
    this.name = 'UpstreamBusyError';
  }
}

/** What a client refused by a full queue is told to wait: a queue drains in seconds or not at all. */
export const BUSY_RETRY_AFTER_SECONDS = 5;
