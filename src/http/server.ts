// The HTTP server: node:http2 with HTTP/1.1 fallback, a request id and child logger per request, one access
// log line per request, and the only place where errors become responses.
import { createServer as createHttp1Server } from 'node:http';
import {
  createSecureServer,
  createServer as createHttp2Server,
  type Http2SecureServer,
  type Http2Server,
  type Http2Session,
} from 'node:http2';
import type { Server, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { RegistryError } from '../registry/errors.js';
import { UpstreamContentError, UpstreamError } from '../upstream/errors.js';
import type { Metrics } from '../metrics/metrics.js';
import { BundleError } from '../seed/layout-source.js';
import { CLIENT_HEADER, ClientGoneError, Context, header, REQUEST_HEADER, responseClosed, type Request, type RequestContext, type Response } from './context.js';
import { armHeadChecks, guardSession, http1Options, http2Settings, type ConnectionLimits } from './limits.js';
import { createSniffingListener } from './listener.js';

export type Handler = (ctx: RequestContext) => Promise<void>;

export interface ServerOptions {
  handler: Handler;
  log: Logger;
  metrics: Metrics;
  /** PEM certificate chain and key: serve HTTPS, HTTP/2 or HTTP/1.1 by ALPN. Absent: plain HTTP. */
  tls?: { cert: Buffer; key: Buffer } | undefined;
  /** Timeouts and limits for client connections (config `http`). */
  limits: ConnectionLimits;
  /**
   * How long a whole HTTP/1 request, body included, may take. Default: the head timeout, since registry
   * clients send no bodies; the admin socket takes bundles and sets 0 (none).
   */
  requestTimeout?: number;
  /**
   * The primary's internal socket behind http.workers (http/workers/): the request id and the client's address
   * come from the forwarding worker's headers, and the worker, which answers the client, counts the request in
   * the duration histogram and writes its access line (here: debug only).
   */
  forwarded?: boolean;
  /** Request ids start with this (a worker's `w<id>-`), so that they stay unique across processes. */
  idPrefix?: string;
}

/**
 * Methods that may label a metric. Any other (an HTTP/2 `:method` can be any string, 8 KB long) is `other`:
 * each distinct label value is a series kept forever (issue 14, finding 1).
 */
const METHOD_LABELS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

export class RegistryServer {
  /** The listening server: TLS with ALPN, or a plain socket that hands HTTP/1.1 and h2c to the servers below. */
  readonly server: Server | Http2SecureServer;
  private nextRequestId = 0;
  /** HTTP/1.1 connections and how many of their requests are in flight, to close idle ones on shutdown. */
  private readonly sockets = new Map<Socket, Http1State>();
  /** Every accepted connection, whatever its protocol, to cut them all when the shutdown grace ends. */
  private readonly connections = new Set<Socket>();
  private readonly sessions = new Set<Http2Session>();
  private closing = false;
  private disarm: () => void = () => undefined;

  constructor(private readonly options: ServerOptions) {
    const handle = (req: Request, res: Response) => void this.handle(req, res);
    const { limits } = options;
    const settings = http2Settings(limits);
    let http2: Http2Server | Http2SecureServer;
    if (options.tls) {
      const secure = createSecureServer({ ...options.tls, allowHTTP1: true, settings, handshakeTimeout: limits.headersTimeout }, handle);
      // HTTP/1.1 over TLS is served by the same server: track those connections for shutdown.
      secure.on('secureConnection', (socket: TLSSocket) => {
        if (socket.alpnProtocol !== 'h2') this.trackHttp1(socket);
      });
      this.server = secure;
      http2 = secure;
    } else {
      const http1 = createHttp1Server({ ...http1Options(limits), ...(options.requestTimeout === undefined ? {} : { requestTimeout: options.requestTimeout }) }, handle);
      http1.on('connection', (socket: Socket) => this.trackHttp1(socket));
      this.disarm = armHeadChecks(http1).disarm;
      http2 = createHttp2Server({ settings }, handle);
      this.server = createSniffingListener(http1, http2, limits.headersTimeout);
    }
    // Beyond this, net closes new connections as soon as they are accepted.
    this.server.maxConnections = limits.maxConnections;
    this.server.on('connection', (socket: Socket) => {
      this.connections.add(socket);
      socket.once('close', () => this.connections.delete(socket));
    });
    http2.on('session', (session: Http2Session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      guardSession(session, limits);
    });
  }

  private trackHttp1(socket: Socket): void {
    const state: Http1State = { active: 0, waiting: undefined, waitMs: 0 };
    this.sockets.set(socket, state);
    this.awaitHead(socket, state, this.options.limits.headersTimeout);
    socket.once('close', () => {
      clearTimeout(state.waiting);
      this.sockets.delete(socket);
    });
  }

  /**
   * Backstop for Node's own head checks, which only the plain HTTP/1 server runs (HTTP/1.1 over TLS is parsed
   * for the HTTP/2 server, which has none): a connection with no request in flight must bring its next request
   * head within `ms`, or it is dropped. One timer per connection, restarted (not remade) after each request: a
   * request in flight when it fires keeps the connection, and the request's end restarts it.
   */
  private awaitHead(socket: Socket, state: Http1State, ms: number): void {
    if (state.waiting && state.waitMs === ms) {
      state.waiting.refresh();
      return;
    }
    clearTimeout(state.waiting);
    state.waiting = setTimeout(() => {
      if (state.active === 0) socket.destroy();
    }, ms);
    state.waiting.unref();
    state.waitMs = ms;
  }

  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    await this.bind({ host, port });
    const address = this.server.address();
    return typeof address === 'object' && address ? { host: address.address, port: address.port } : { host, port };
  }

  /** Listens on a Unix socket (the admin socket); the caller sets the file's mode. */
  listenPath(path: string): Promise<void> {
    return this.bind({ path });
  }

  /** Resolves once listening; a bind failure (address in use, a path refused) rejects instead of throwing later. */
  private bind(where: { host: string; port: number } | { path: string }): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(where, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  /** Stops accepting, lets responses in flight finish for up to `timeoutMs`, then cuts what is left. */
  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    this.disarm();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const session of this.sessions) session.close();
    for (const [socket, state] of this.sockets) if (state.active === 0) socket.end();
    const timer = setTimeout(() => {
      for (const session of this.sessions) session.destroy();
      for (const socket of this.connections) socket.destroy();
    }, timeoutMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
  }

  private async handle(req: Request, res: Response): Promise<void> {
    const started = process.hrtime.bigint();
    const rawUrl = req.url ?? '/';
    const queryAt = rawUrl.indexOf('?');
    const ctx = this.context(req, res, rawUrl, queryAt);
    const socketState = req.httpVersionMajor === 1 ? this.sockets.get(req.socket) : undefined;
    if (socketState) socketState.active++;
    // Every answer, errors included: a browser must never guess HTML out of a blob or an error body (finding 9).
    res.setHeader('x-content-type-options', 'nosniff');
    if (this.closing && req.httpVersionMajor === 1) res.setHeader('connection', 'close');
    try {
      await this.options.handler(ctx);
    } catch (err) {
      this.fail(ctx, err);
    } finally {
      if (socketState) {
        socketState.active--;
        if (this.closing && socketState.active === 0) (req.socket).end();
        // Idle now: keepAliveTimeout (idleTimeout) closes it, unless a next request head is dripping in.
        else if (socketState.active === 0) {
          const { idleTimeout, headersTimeout } = this.options.limits;
          this.awaitHead(req.socket, socketState, idleTimeout + headersTimeout);
        }
      }
      this.accessLog(ctx, started);
    }
  }

  private context(req: Request, res: Response, rawUrl: string, queryAt: number): Context {
    const { log, forwarded, idPrefix } = this.options;
    const n = ++this.nextRequestId;
    if (!forwarded) return new Context(req, res, log, idPrefix === undefined ? n : `${idPrefix}${n}`, rawUrl, queryAt);
    // Only workers reach this socket (mode 0600): their headers are trusted here, and only here.
    return new Context(req, res, log, header(req, REQUEST_HEADER) ?? `p${n}`, rawUrl, queryAt, header(req, CLIENT_HEADER) ?? '');
  }

  /** Maps any error to the registry JSON body, or cuts the response if its headers already went out. */
  private fail(ctx: RequestContext, err: unknown): void {
    const { res, log } = ctx;
    const error = toRegistryError(err);
    if (responseClosed(res) && !res.writableEnded && !res.headersSent) {
      // The client hung up while we waited (its signal aborted the work): nobody to answer. The access log and
      // metrics say so with nginx's 499, and a failure of our own is still logged as one.
      res.statusCode = 499;
      if (ctx.kind) this.options.metrics.cacheRequests.inc({ registry: ctx.registry, kind: ctx.kind, result: 'error' });
      if (error.code === 'UNKNOWN' && !isAbort(err)) log.error({ err }, 'request failed');
      else log.debug('client went away');
      return;
    }
    if (res.headersSent) {
      // Too late for a status: breaking the response is how the client learns the body is incomplete.
      if (err instanceof ClientGoneError || (err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') log.debug('client went away');
      else log.warn({ err }, 'response aborted');
      if (!res.destroyed) res.destroy(err instanceof Error ? err : undefined);
      return;
    }
    // Our own failures are errors; upstream's (outage, limit) are warnings: the cause is elsewhere.
    if (error.code === 'UNKNOWN') log.error({ err }, 'request failed');
    else if (err !== error) log.warn({ err }, 'upstream could not answer');
    if (ctx.kind) this.options.metrics.cacheRequests.inc({ registry: ctx.registry, kind: ctx.kind, result: 'error' });
    const body = JSON.stringify(error.toJSON());
    const length = Buffer.byteLength(body);
    res.writeHead(error.status, {
      'content-type': 'application/json',
      'content-length': length,
      'docker-distribution-api-version': 'registry/2.0',
      ...error.headers,
    });
    if (ctx.method === 'HEAD') {
      res.end();
    } else {
      ctx.bytes = length;
      res.end(body);
    }
  }

  private accessLog(ctx: Context, started: bigint): void {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const status = ctx.res.statusCode;
    const method = METHOD_LABELS.has(ctx.method) ? ctx.method : 'other';
    const { forwarded, log } = this.options;
    if (!forwarded) this.options.metrics.httpDuration.observe({ method, status: String(status) }, seconds);
    if (!log.isLevelEnabled(forwarded ? 'debug' : 'info')) return;
    const fields = {
      method: ctx.method,
      path: ctx.path,
      ...(ctx.query ? { query: ctx.query } : {}),
      status,
      bytes: ctx.bytes,
      ms: Math.round(seconds * 1e4) / 10,
      cache: ctx.cache,
      registry: ctx.registry,
      ...(ctx.via ? { via: ctx.via } : {}),
    };
    if (forwarded) ctx.log.debug(fields, 'forwarded request');
    else ctx.info(fields, 'request');
  }
}

interface Http1State {
  /** Requests in flight on the connection. */
  active: number;
  /** Drops the connection if no request head arrives in time while no request is in flight. */
  waiting: NodeJS.Timeout | undefined;
  waitMs: number;
}

function isAbort(err: unknown): boolean {
  return err instanceof ClientGoneError || (err instanceof Error && err.name === 'AbortError');
}


/** Our errors pass through; upstream trouble becomes what a client can act on; anything else is hidden. */
export function toRegistryError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  if (err instanceof UpstreamError) {
    if (err.status === 429) {
      const retryAfter = String(err.retryAfterSeconds ?? 60);
      return new RegistryError('TOOMANYREQUESTS', 'upstream registry rate limit reached', {
        headers: { 'retry-after': retryAfter },
        cause: err,
      });
    }
    // 401/403 mean our credentials at upstream, not the client's: to the client it is unavailable.
    return new RegistryError('UNAVAILABLE', 'upstream registry unavailable', {
      cause: err,
      detail: { status: err.status },
      ...(err.retryAfterSeconds === undefined ? {} : { headers: { 'retry-after': String(err.retryAfterSeconds) } }),
    });
  }
  // A bundle given to the admin API's import that did not check out: the caller's mistake, named.
  if (err instanceof BundleError) return new RegistryError('BAD_REQUEST', err.message, { cause: err });
  if (err instanceof UpstreamContentError) {
    return new RegistryError('UNAVAILABLE', 'upstream registry sent invalid content', { cause: err });
  }
  return new RegistryError('UNKNOWN', 'internal error', { cause: err });
}
