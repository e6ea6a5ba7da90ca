// The admin API under /api/v1/admin/: JSON in and out, NDJSON for progress (seed, import), a tar for export.
// Served on the data directory's Unix socket (socket.ts) and, with `admin.token`, behind a bearer check on the
// mirror's port (requireBearer). Errors are thrown as RegistryErrors; http/server.ts turns them into responses,
// except once a stream has started: then the last NDJSON line is the error.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { header, responseClosed, sendBody, type RequestContext } from '../http/context.js';
import { toRegistryError, type Handler } from '../http/server.js';
import { RegistryError } from '../registry/errors.js';
import { parsePlatforms, type Platform, type SeedProgress } from '../seed/seed.js';
import type { AdminApi, ExportRequest } from './operations.js';

export const ADMIN_PREFIX = '/api/v1/admin/';
/** A JSON request is a few references; export's `have` list may name every blob of a large cache. */
const MAX_JSON = 1 << 20;
const MAX_EXPORT_JSON = 32 << 20;
/** Progress lines at most this often: a seed of a 1 GB image is not a million lines. */
const PROGRESS_MS = 100;

export interface AdminRouteOptions {
  /** Where an uploaded bundle is spooled before import: the data directory's tmp/, emptied at every start. */
  tmpDir: string;
}

export function createAdminRoutes(ops: AdminApi, options: AdminRouteOptions): Handler {
  return async (ctx) => {
    const route = `${ctx.method} ${ctx.path.slice(ADMIN_PREFIX.length)}`;
    switch (route) {
      case 'GET images':
        return sendJson(ctx, await ops.images());
      case 'GET pins':
        return sendJson(ctx, { pins: await ops.pins() });
      case 'POST pins':
        return sendJson(ctx, { changes: await ops.pin(stringList(await readJson(ctx), 'refs')) });
      case 'DELETE pins':
        return sendJson(ctx, { changes: await ops.unpin(stringList(await readJson(ctx), 'refs')) });
      case 'POST delete': {
        const body = await readJson(ctx);
        const what = body.what ?? 'tag';
        if (what !== 'tag' && what !== 'image') throw badRequest('"what" must be "tag" or "image"');
        return sendJson(ctx, await ops.delete(string(body, 'ref'), what));
      }
      case 'POST revalidate':
        return sendJson(ctx, await ops.revalidate(string(await readJson(ctx), 'ref')));
      case 'POST gc': {
        const dryRun = (await readJson(ctx)).dryRun ?? false;
        if (typeof dryRun !== 'boolean') throw badRequest('"dryRun" must be true or false');
        return sendJson(ctx, await ops.gc(dryRun));
      }
      case 'POST seed':
        return seed(ctx, ops, await readJson(ctx));
      case 'POST export':
        return exportBundle(ctx, ops, exportRequest(await readJson(ctx, MAX_EXPORT_JSON)));
      case 'POST import':
        return importBundle(ctx, ops, options.tmpDir);
      default:
        throw new RegistryError('NOT_FOUND', 'no such admin endpoint');
    }
  };
}

/**
 * `Authorization: Bearer <token>` in front of the admin routes on the network. Both sides are hashed first, so
 * the comparison is constant-time whatever the lengths; a missing or wrong token get the same 401.
 */
export function requireBearer(token: string, handler: Handler): Handler {
  const expected = createHash('sha256').update(token).digest();
  return async (ctx) => {
    const given = /^Bearer ([^\s]+)$/i.exec(header(ctx.req, 'authorization') ?? '')?.[1] ?? '';
    const actual = createHash('sha256').update(given).digest();
    if (!timingSafeEqual(expected, actual)) {
      throw new RegistryError('UNAUTHORIZED', 'admin token required', { headers: { 'www-authenticate': 'Bearer realm="regmirror-admin"' } });
    }
    return handler(ctx);
  };
}

function badRequest(message: string): RegistryError {
  return new RegistryError('BAD_REQUEST', message);
}

function sendJson(ctx: RequestContext, value: unknown): void {
  sendBody(ctx, 200, JSON.stringify(value), { 'content-type': 'application/json', 'cache-control': 'no-store' });
}

/** The request body as a JSON object, read up to `limit` bytes (413 beyond); an empty body is `{}`. */
async function readJson(ctx: RequestContext, limit = MAX_JSON): Promise<Record<string, unknown>> {
  const declared = Number(header(ctx.req, 'content-length') ?? 0);
  const tooLarge = () => new RegistryError('TOO_LARGE', `request body over ${limit} bytes`);
  if (declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let read = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    read += chunk.length;
    if (read > limit) throw tooLarge();
    chunks.push(chunk);
  }
  if (read === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw badRequest('the request body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest('the request body must be a JSON object');
  return value as Record<string, unknown>;
}

function string(body: Record<string, unknown>, field: string): string {
  const value = body[field];
  if (typeof value !== 'string' || value === '') throw badRequest(`"${field}" must be a non-empty string`);
  return value;
}

function stringList(body: Record<string, unknown>, field: string, required = true): string[] {
  const value = body[field] ?? [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw badRequest(`"${field}" must be a list of strings`);
  if (required && value.length === 0) throw badRequest(`"${field}" must name at least one image`);
  return value;
}

function exportRequest(body: Record<string, unknown>): ExportRequest {
  const refs = stringList(body, 'refs', false);
  const which = body.pinned === true ? 'pinned' : body.all === true ? 'all' : undefined;
  return { refs, ...(which ? { which } : {}), have: stringList(body, 'have', false) };
}

function platformsOf(value: unknown): Platform[] | 'all' {
  if (value === undefined) return [{ os: 'linux', architecture: 'amd64' }];
  if (value === 'all') return 'all';
  if (typeof value !== 'string') throw badRequest('"platforms" must be "all" or a list like "linux/amd64,linux/arm64"');
  try {
    return parsePlatforms(value);
  } catch (err) {
    throw badRequest((err as Error).message);
  }
}

/** An NDJSON response: one event a line, the last one `done` (with the result) or `error`. */
class EventStream {
  private pending = 0;
  private sentAt = 0;

  constructor(private readonly ctx: RequestContext) {
    ctx.res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  }

  send(event: Record<string, unknown>): void {
    this.flushBytes();
    const { res } = this.ctx;
    // A client that went away misses the rest; the work itself finishes (a seed's downloads are the cache's).
    if (responseClosed(res)) return;
    const line = `${JSON.stringify(event)}\n`;
    this.ctx.bytes += Buffer.byteLength(line);
    (res as Writable).write(line);
  }

  /** Bytes as they arrive, sent as one line per PROGRESS_MS. */
  advance(bytes: number): void {
    this.pending += bytes;
    if (Date.now() - this.sentAt >= PROGRESS_MS) this.flushBytes();
  }

  private flushBytes(): void {
    if (this.pending === 0) return;
    const bytes = this.pending;
    this.pending = 0;
    this.sentAt = Date.now();
    this.send({ event: 'advance', bytes });
  }

  async run(work: () => Promise<unknown>): Promise<void> {
    try {
      this.send({ event: 'done', result: await work() });
    } catch (err) {
      const error = toRegistryError(err);
      if (error.code === 'UNKNOWN') this.ctx.log.error({ err }, 'admin operation failed');
      this.send({ event: 'error', error: error.toJSON().errors[0] });
    }
    if (!responseClosed(this.ctx.res)) this.ctx.res.end();
  }
}

async function seed(ctx: RequestContext, ops: AdminApi, body: Record<string, unknown>): Promise<void> {
  const refs = stringList(body, 'refs');
  const platforms = platformsOf(body.platforms);
  const events = new EventStream(ctx);
  const progress: SeedProgress = {
    start: (image, total) => events.send({ event: 'start', image, total }),
    advance: (bytes) => events.advance(bytes),
    end: () => events.send({ event: 'end' }),
  };
  await events.run(() => ops.seed(refs, platforms, progress, (result) => events.send({ event: 'image', result })));
}

/**
 * The tar streams through a PassThrough piped to the response: a client that goes away destroys it, which
 * ends the export (and its hold on the blobs) at once. The summary goes out as a header, before the first byte.
 */
async function exportBundle(ctx: RequestContext, ops: AdminApi, request: ExportRequest): Promise<void> {
  const body = new PassThrough();
  let sending: Promise<void> | undefined;
  const open = (plan: unknown): Writable => {
    ctx.res.writeHead(200, { 'content-type': 'application/x-tar', 'cache-control': 'no-store', 'x-regmirror-export': JSON.stringify(plan) });
    sending = pipeline(body, countBytes(ctx), ctx.res as Writable);
    // Handled at once: a client gone mid-export rejects this while the export is still writing, and an
    // unhandled rejection would end the process (the export then fails on its destroyed destination).
    sending.catch(() => undefined);
    return body;
  };
  try {
    await ops.exportBundle(request, open);
    body.end();
    await sending;
  } catch (err) {
    body.destroy();
    await sending?.catch(() => undefined);
    throw err;
  }
}

function countBytes(ctx: RequestContext): PassThrough {
  const counter = new PassThrough();
  counter.on('data', (chunk: Buffer) => (ctx.bytes += chunk.length));
  return counter;
}

/** The bundle is spooled under tmp/ (import reads a file or directory), imported, and removed whatever happens. */
async function importBundle(ctx: RequestContext, ops: AdminApi, tmpDir: string): Promise<void> {
  await refuseIfNoRoom(ctx, tmpDir);
  const spool = join(tmpDir, `import-${randomBytes(8).toString('hex')}.tar`);
  const removeSpool = () => rm(spool, { force: true });
  try {
    await pipeline(ctx.req, createWriteStream(spool, { mode: 0o600 }));
  } catch (err) {
    await removeSpool();
    throw err;
  }
  const events = new EventStream(ctx);
  // Removed before the result goes out, so that a client that has its answer finds tmp/ as it was.
  await events.run(() => ops.importBundle(spool, (bytes) => events.advance(bytes)).finally(removeSpool));
}

/**
 * The spool and the imported blobs both take room until the spool goes: a bundle larger than half the free
 * space would fill the disk, and a full disk makes downloads evict cached content. Refused before a byte lands.
 */
async function refuseIfNoRoom(ctx: RequestContext, tmpDir: string): Promise<void> {
  const declared = Number(header(ctx.req, 'content-length') ?? Number.NaN);
  if (!Number.isFinite(declared)) return;
  const fs = await statfs(tmpDir);
  const free = fs.bavail * fs.bsize;
  if (declared * 2 > free) {
    throw new RegistryError('TOO_LARGE', `the bundle (${declared} bytes) needs twice its size free in the data directory (${free} bytes free): import it with the mirror stopped, or free space`);
  }
}
