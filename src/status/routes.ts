// The status page (`/`, `/ui/*`) and its read-only JSON API (`/api/v1/status`, `/images`, `/history`): one
// Handler that routes.ts calls for those paths. `/api/v1/admin/…` is not ours (the admin API is composed in
// front of this handler): 404 here. The page updates by polling /api/v1/status: no connection state to bound.
import type { ClientAuth } from '../http/client-auth.js';
import type { RequestContext } from '../http/context.js';
import type { Handler } from '../http/server.js';
import { RegistryError } from '../registry/errors.js';
import type { Asset } from './assets.js';
import type { History } from './history.js';
import type { StatusSnapshot } from './snapshot.js';

export interface StatusRouteDeps {
  assets: ReadonlyMap<string, Asset>;
  snapshot: Pick<StatusSnapshot, 'build'>;
  history: Pick<History, 'points' | 'intervalMs' | 'capacity'>;
  /** The cached image list (see images.ts). */
  images: () => Promise<{ generatedAt: number; images: Array<{ registry: string; repository: string }> }>;
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
      const list = await deps.images();
      return sendJson(ctx, deps.auth ? { ...list, images: list.images.filter(visible) } : list);
    }
    if (path === '/api/v1/history') {
      const { intervalMs, capacity } = deps.history;
      return sendJson(ctx, { intervalSeconds: intervalMs / 1000, capacity, points: deps.history.points() });
    }
    throw notFound();
  };
}

function notFound(): RegistryError {
  return new RegistryError('NOT_FOUND', 'no such endpoint');
}

function sendJson(ctx: RequestContext, value: unknown): Promise<void> {
  return send(ctx, Buffer.from(JSON.stringify(value)), 'application/json');
}

function send(ctx: RequestContext, body: Buffer, contentType: string, extra: Record<string, string> = {}): Promise<void> {
  ctx.res.writeHead(200, {
    'content-type': contentType,
    'content-length': body.length,
    // Figures change every second and the files with each release: always ask again.
    'cache-control': 'no-cache',
    'referrer-policy': 'no-referrer',
    ...extra,
  });
  if (ctx.method === 'HEAD') {
    ctx.res.end();
  } else {
    ctx.bytes = body.length;
    ctx.res.end(body);
  }
  return Promise.resolve();
}
