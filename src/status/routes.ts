// The status page (`/`, `/ui/*`) and its read-only JSON API (`/api/v1/status`, `/images`, `/history`): one
// Handler that routes.ts calls for those paths. `/api/v1/admin/…` is not ours (the admin API is composed in
// front of this handler): 404 here. `/api/v1/images` is one page of the list: `?q=` filters, `?sort=` and
// `?order=` order, `?limit=` cuts (default 200, at most 5,000), server side; `total` and `matched` count the rest. The page updates by polling /api/v1/status: no connection state to bound.
import { IMAGE_SORT_KEYS, type ImageQuery, type ImageSortKey } from '../admin/images.js';
import type { ClientAuth } from '../http/client-auth.js';
import { sendBody, type RequestContext } from '../http/context.js';
import type { Handler } from '../http/server.js';
import { RegistryError } from '../registry/errors.js';
import type { Asset } from './assets.js';
import type { History } from './history.js';
import type { StatusSnapshot } from './snapshot.js';

export interface StatusRouteDeps {
  assets: ReadonlyMap<string, Asset>;
  snapshot: Pick<StatusSnapshot, 'build'>;
  history: Pick<History, 'points' | 'intervalMs' | 'capacity'>;
  /**
   * One page of the cached image list (see images.ts): filtered, sorted and cut server side over the rows the
   * caller may see (`visible`), sizes only for the rows returned.
   */
  images: (query: ImageQuery, visible: (row: { registry: string; repository: string }) => boolean) => Promise<unknown>;
  /** Client authentication: when set, the page and the API ask for a user of the htpasswd file. */
  auth?: Pick<ClientAuth, 'check' | 'allows'> | undefined;
}

/**
 * Scripts and styles only from this origin, as files (no inline script, no eval), data only from this origin:
 * the page works air-gapped, and injected markup could run nothing.
 */
export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const READ_METHODS = new Set(['GET', 'HEAD']);

export function createStatusRoutes(deps: StatusRouteDeps): Handler {
  return async (ctx) => {
    const { path } = ctx;
    if (path === '/api/v1/admin' || path.startsWith('/api/v1/admin/')) throw notFound();
    if (!READ_METHODS.has(ctx.method)) {
      throw new RegistryError('UNSUPPORTED', 'the status page and /api/v1/ are read-only', { headers: { allow: 'GET, HEAD' } });
    }
    const user = deps.auth ? await deps.auth.check(ctx, { kind: 'status' }) : undefined;
    // A user sees the repositories they may pull, no others: names and tags of private ones stay private.
    const visible = (row: { registry: string; repository: string }): boolean =>
      !deps.auth || (user !== undefined && deps.auth.allows(user, row.registry, row.repository));
    const asset = deps.assets.get(path);
    if (asset) return send(ctx, asset.body, asset.contentType, path === '/' ? { 'content-security-policy': CSP } : {});
    if (path === '/api/v1/status') {
      const status = await deps.snapshot.build();
      return sendJson(ctx, deps.auth ? { ...status, downloads: status.downloads.filter(visible) } : status);
    }
    if (path === '/api/v1/images') {
      return sendJson(ctx, await deps.images(imageQuery(ctx.query), visible));
    }
    if (path === '/api/v1/history') {
      const { intervalMs, capacity } = deps.history;
      return sendJson(ctx, { intervalSeconds: intervalMs / 1000, capacity, points: deps.history.points() });
    }
    throw notFound();
  };
}

/** Rows `/api/v1/images` returns unless asked (`?limit=`), and at most: a page, not the whole cache. */
export const IMAGES_LIMIT = 200;
export const IMAGES_LIMIT_MAX = 5_000;

/** `?q=&sort=&order=&limit=`; unknown parameters are ignored, bad values are BAD_REQUEST. */
export function imageQuery(search: string): ImageQuery {
  const params = new URLSearchParams(search);
  const sort = params.get('sort') ?? 'pulledAt';
  if (!(IMAGE_SORT_KEYS as readonly string[]).includes(sort)) throw badRequest(`sort must be one of ${IMAGE_SORT_KEYS.join(', ')}`);
  const order = params.get('order') ?? (sort === 'name' || sort === 'registry' ? 'asc' : 'desc');
  if (order !== 'asc' && order !== 'desc') throw badRequest('order must be asc or desc');
  const limitText = params.get('limit');
  const limit = limitText === null ? IMAGES_LIMIT : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > IMAGES_LIMIT_MAX || (limitText !== null && !/^\d+$/.test(limitText))) {
    throw badRequest(`limit must be a whole number from 1 to ${IMAGES_LIMIT_MAX}`);
  }
  return { q: params.get('q') ?? '', sort: sort as ImageSortKey, order, limit };
}

function badRequest(message: string): RegistryError {
  return new RegistryError('BAD_REQUEST', message);
}

function notFound(): RegistryError {
  return new RegistryError('NOT_FOUND', 'no such endpoint');
}

function sendJson(ctx: RequestContext, value: unknown): Promise<void> {
  return send(ctx, JSON.stringify(value), 'application/json');
}

function send(ctx: RequestContext, body: string | Buffer, contentType: string, extra: Record<string, string> = {}): Promise<void> {
  // Figures change every second and the files with each release: always ask again.
  sendBody(ctx, 200, body, { 'content-type': contentType, 'cache-control': 'no-cache', 'referrer-policy': 'no-referrer', ...extra });
  return Promise.resolve();
}
