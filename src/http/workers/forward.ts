// A worker's way to the primary (http.workers, issue 16.3): the request as the client sent it, over the primary's
// internal Unix socket, and the answer streamed back with backpressure both ways. The client's hang-up aborts the
// forwarded request, so the primary sees its client go, as it would have directly.
import type { IncomingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { Pool } from 'undici';
import { RegistryError } from '../../registry/errors.js';
import { CACHE_HEADER, CLIENT_HEADER, ClientGoneError, REQUEST_HEADER, type RequestContext } from '../context.js';
import { SendTimeoutError } from '../send-file.js';

/**
 * Connections to the primary per worker. Generous on purpose: a forwarded download holds its connection as long
 * as it runs, and a request queued behind one would wait for it (head-of-line blocking on a Unix socket is pure loss).
 */
export const PRIMARY_CONNECTIONS = 256;

/**
 * Per-connection headers (RFC 9110 §7.6.1), HTTP/2's own, and ours, which only a worker may set. `expect` too: the
 * worker's own server has sent the 100 Continue already, and undici refuses the header (a 503 for `curl -T`).
 */
const NOT_FORWARDED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'http2-settings', 'host', 'expect', CLIENT_HEADER, REQUEST_HEADER, CACHE_HEADER]);
const NOT_RETURNED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', CACHE_HEADER]);

export interface Forwarded {
  status: number;
  headers: IncomingHttpHeaders;
  /** The whole body, when the caller asked to keep bodies up to a size and this one was no larger. */
  body: Buffer | undefined;
}

export class PrimaryLink {
  private readonly pool: Pool;

  constructor(
    socketPath: string,
    /** A response the client takes no bytes of for this long is cut (config `http.idleTimeout`, as send-file). */
    private readonly sendTimeout: number,
  ) {
    // The primary answers for upstream's delays with its own timeouts; none here would add a second, shorter one.
    this.pool = new Pool('http://primary', { socketPath, connections: PRIMARY_CONNECTIONS, headersTimeout: 0, bodyTimeout: 0 });
  }

  /** Sends the primary's answer to the client; keeps a copy of a body of at most `keepUpTo` bytes. */
  async forward(ctx: RequestContext, keepUpTo = 0): Promise<Forwarded> {
    ctx.via = 'primary';
    const { req, res } = ctx;
    const withBody = ctx.method !== 'GET' && ctx.method !== 'HEAD';
    let response: Awaited<ReturnType<Pool['request']>>;
    try {
      response = await this.pool.request({
        path: `${ctx.path}${ctx.query}`,
        method: ctx.method,
        headers: requestHeaders(ctx),
        body: withBody ? req : null,
        signal: ctx.signal,
      });
    } catch (err) {
      if (ctx.signal.aborted) throw new ClientGoneError();
      throw new RegistryError('UNAVAILABLE', 'the mirror is not ready (primary process unavailable)', { cause: err });
    }
    const { statusCode, headers, body } = response;
    const cache = headers[CACHE_HEADER];
    if (typeof cache === 'string') ctx.cache = cache;
    const out: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(headers)) if (value !== undefined && !NOT_RETURNED.has(name)) out[name] = value;
    try {
      res.writeHead(statusCode, out);
    } catch (err) {
      body.destroy();
      throw err;
    }
    if (ctx.method === 'HEAD') {
      await body.dump();
      res.end();
      return { status: statusCode, headers, body: undefined };
    }
    const length = Number(headers['content-length'] ?? Number.NaN);
    const kept: Buffer[] | undefined = length <= keepUpTo ? [] : undefined;
    const stall = setTimeout(() => res.destroy(new SendTimeoutError(this.sendTimeout)), this.sendTimeout);
    body.on('data', (chunk: Buffer) => {
      ctx.bytes += chunk.length;
      kept?.push(chunk);
      stall.refresh();
    });
    try {
      await pipeline(body, res);
    } finally {
      clearTimeout(stall);
    }
    return { status: statusCode, headers, body: kept && Buffer.concat(kept) };
  }

  /**
   * The primary's answer to a HEAD of the client's request, for the worker alone (nothing reaches the client): how a
   * worker learns it may send a file it already has, without the body crossing the socket.
   */
  async head(ctx: RequestContext): Promise<Pick<Forwarded, 'status' | 'headers'>> {
    try {
      const { statusCode, headers, body } = await this.pool.request({ path: `${ctx.path}${ctx.query}`, method: 'HEAD', headers: requestHeaders(ctx), signal: ctx.signal });
      await body.dump();
      return { status: statusCode, headers };
    } catch (err) {
      if (ctx.signal.aborted) throw new ClientGoneError();
      throw new RegistryError('UNAVAILABLE', 'the mirror is not ready (primary process unavailable)', { cause: err });
    }
  }

  /** Waits for the requests in flight (the worker's server has drained its clients first). */
  close(): Promise<void> {
    return this.pool.close();
  }
}

function requestHeaders(ctx: RequestContext): Record<string, string | string[]> {
  const { req } = ctx;
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    // HTTP/2's pseudo-headers (`:path`, `:authority`) are the request line; the primary speaks HTTP/1.1.
    if (value === undefined || name.startsWith(':') || NOT_FORWARDED.has(name)) continue;
    out[name] = value;
  }
  const host = req.headers.host ?? req.headers[':authority'];
  if (typeof host === 'string') out.host = host;
  out[CLIENT_HEADER] = ctx.address ?? '';
  out[REQUEST_HEADER] = String(ctx.id);
  return out;
}
