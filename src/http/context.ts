// What a route handler gets: the request, the response, a request-bound logger, and fields for the access log.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Logger } from 'pino';

export type Request = IncomingMessage | Http2ServerRequest;
export type Response = ServerResponse | Http2ServerResponse;

export interface RequestContext {
  readonly req: Request;
  readonly res: Response;
  readonly log: Logger;
  readonly method: string;
  /** Raw path, not percent-decoded, so that `%2e%2e` stays invalid instead of becoming `..`. */
  readonly path: string;
  /** The query string with its `?`, or ''. */
  readonly query: string;
  /** Aborts when the client goes away before its answer is complete; made on first use. */
  readonly signal: AbortSignal;
  /** The client's address (its share of the pull allowance); read on first use. */
  readonly address: string | undefined;
  /** Filled in by handlers for the access log and metrics. */
  cache: string | undefined;
  kind: 'manifest' | 'blob' | 'tags' | undefined;
  /** The registry the request is for, once routed. */
  registry: string | undefined;
  /** With http.workers: who answered, a worker from its `file` or `memory`, or the `primary`; logged when set. */
  via: 'file' | 'memory' | 'primary' | undefined;
  bytes: number;
  /** The request id in the access log and every line of the request's logger. */
  readonly id: number | string;
}

/** Headers between a worker and the primary's internal socket only (http/workers/); a client's are dropped. */
export const CLIENT_HEADER = 'x-regmirror-client';
export const REQUEST_HEADER = 'x-regmirror-request';
export const CACHE_HEADER = 'x-regmirror-cache';

export function header(req: Request, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/**
 * A whole answer held in memory (JSON, text, the status page's files): its length set, no body for a HEAD, and
 * the bytes counted for the access log. The one way every route sends such a body.
 */
export function sendBody(ctx: RequestContext, status: number, body: string | Buffer, headers: Record<string, string | number>): void {
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  ctx.res.writeHead(status, { ...headers, 'content-length': length });
  if (ctx.method === 'HEAD') {
    ctx.res.end();
  } else {
    ctx.bytes = length;
    ctx.res.end(body);
  }
}

/** The client's connection or stream is gone. The HTTP/2 compatibility response has no `destroyed`: its stream has. */
export function responseClosed(res: Response): boolean {
  return 'stream' in res ? res.stream.destroyed : res.destroyed;
}

/** The client went away before its answer was complete: nobody is left to answer. */
export class ClientGoneError extends Error {
  readonly code = 'CLIENT_GONE';
  constructor() {
    super('client closed the connection');
    this.name = 'ClientGoneError';
  }
}

/**
 * One request's context. A class, not an object literal with getters: those would make three closures per
 * request on the hottest path; here the lazy parts (child logger, AbortSignal, address) live on the prototype.
 */
export class Context implements RequestContext {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  private cached: string | undefined = undefined;
  kind: RequestContext['kind'] = undefined;
  registry: string | undefined = undefined;
  via: RequestContext['via'] = undefined;
  bytes = 0;
  private logger: Logger | undefined;
  private aborter: AbortController | undefined;

  constructor(
    readonly req: Request,
    readonly res: Response,
    private readonly parentLog: Logger,
    readonly id: number | string,
    rawUrl: string,
    queryAt: number,
    /** Set by the primary's internal socket: the client's address as the worker that forwarded the request saw it. */
    private readonly forwardedFor?: string,
  ) {
    this.method = req.method ?? 'GET';
    this.path = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
    this.query = queryAt === -1 ? '' : rawUrl.slice(queryAt);
  }

  get cache(): string | undefined {
    return this.cached;
  }

  /** Behind a worker, the answer tells it too (`x-regmirror-cache`), for the worker's access log line. */
  set cache(source: string | undefined) {
    this.cached = source;
    if (this.forwardedFor !== undefined && source !== undefined && !this.res.headersSent) this.res.setHeader(CACHE_HEADER, source);
  }

  /** Made on first use: a pino child serialises its bindings, and most requests log nothing below info. */
  get log(): Logger {
    return (this.logger ??= this.parentLog.child({ reqId: this.id }));
  }

  /**
   * One line at info with the request id, through the child logger if a handler made one, else straight from the
   * parent: the same JSON line, without a child per request (the access log is the one line every request writes).
   */
  info(fields: Record<string, unknown>, message: string): void {
    if (this.logger) this.logger.info(fields, message);
    else this.parentLog.info({ reqId: this.id, ...fields }, message);
  }

  /** Made on first use too: only requests that wait on upstream need one. */
  get signal(): AbortSignal {
    return (this.aborter ??= clientGone(this.res)).signal;
  }

  get address(): string | undefined {
    return this.forwardedFor ?? this.req.socket.remoteAddress;
  }
}

/** Aborts when the response closes unfinished: the client hung up, and work done only for it can stop. */
function clientGone(res: Response): AbortController {
  const controller = new AbortController();
  if (responseClosed(res) && !res.writableEnded) controller.abort();
  else res.once('close', () => {
    if (!res.writableEnded) controller.abort();
  });
  return controller;
}
