// Reading an upstream registry's response: its status as an UpstreamError (registry error body, Retry-After),
// and the few headers the client needs.
import type { Dispatcher } from 'undici';
import { readCapped } from './body.js';
import { UpstreamError, type UpstreamErrorDetail } from './errors.js';

/**
 * The longest Retry-After we honour: a broken or hostile upstream saying "ten years" must not stop the mirror
 * from asking again within the hour (issue 14, finding 10).
 */
export const MAX_RETRY_AFTER_SECONDS = 3600;

export async function errorFrom(response: Dispatcher.ResponseData, what: string): Promise<UpstreamError> {
  const body = await readCapped(response.body).catch(() => Buffer.alloc(0));
  let errors: UpstreamErrorDetail[] = [];
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: unknown };
    if (Array.isArray(parsed.errors)) errors = parsed.errors as UpstreamErrorDetail[];
  } catch {
    // Not a registry error body (a proxy's HTML page, say): the status alone tells.
  }
  const retryAfter = Number(single(response.headers['retry-after']));
  return new UpstreamError(`${what}: upstream answered ${response.statusCode}`, {
    status: response.statusCode,
    errors,
    ...(Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfterSeconds: Math.min(retryAfter, MAX_RETRY_AFTER_SECONDS) } : {}),
  });
}

export function contentLength(response: Dispatcher.ResponseData): number | undefined {
  const value = single(response.headers['content-length']);
  return value === undefined ? undefined : Number(value);
}

export function acceptHeader(accept: string | undefined): Record<string, string> {
  return accept === undefined ? {} : { accept };
}

export function mediaTypeOf(headers: Dispatcher.ResponseData['headers']): string {
  return (single(headers['content-type']) ?? '').split(';')[0]?.trim() ?? '';
}

export function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}
