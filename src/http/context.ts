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
  bytes: number;
}

export function header(req: Request, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
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
