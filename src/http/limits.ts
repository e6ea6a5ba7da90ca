// Connection limits (issue 14, finding 2): how long a client may take to send a request head or an HTTP/2
// preface, how long a connection may sit idle, and how many streams one HTTP/2 session may hold.
import type { Server as Http1Server } from 'node:http';
import type { Http2Session, ServerHttp2Stream } from 'node:http2';

/** Milliseconds and counts, from config `http`. */
export interface ConnectionLimits {
  headersTimeout: number;
  idleTimeout: number;
  maxConnections: number;
  maxStreamsPerConnection: number;
}

/**
 * Options for node:http. Node enforces headersTimeout and requestTimeout from a periodic check that starts on
 * 'listening' (see armHeadChecks); it checks every `connectionsCheckingInterval`, 30 s by default, which would
 * let a 2 s limit run to 32 s.
 */
export function http1Options(limits: ConnectionLimits) {
  return {
    headersTimeout: limits.headersTimeout,
    // A mirror takes no request bodies: the whole request is its head.
    requestTimeout: limits.headersTimeout,
    keepAliveTimeout: limits.idleTimeout,
    connectionsCheckingInterval: Math.min(5_000, Math.max(100, limits.headersTimeout / 4)),
  };
}

/**
 * The HTTP/1 server behind the sniffing listener never listens itself, so it never gets the 'listening' that
 * starts Node's connection tracking: without it no parser is tracked and headersTimeout is never checked (a
 * slowloris client dripping one byte a second kept its connection for good). Emitting it arms exactly that;
 * `disarm` stops the periodic check on shutdown.
 */
export function armHeadChecks(http1: Http1Server): { disarm: () => void } {
  http1.emit('listening');
  // http.Server.close() clears the check; the net part finds nothing listening, and no callback means no error.
  return { disarm: () => void http1.close() };
}

/** HTTP/2 settings for both the h2c and the TLS server. */
export function http2Settings(limits: ConnectionLimits) {
  return { maxConcurrentStreams: limits.maxStreamsPerConnection };
}

/**
 * Closes an HTTP/2 session that has had no stream open for idleTimeout (GOAWAY, then closed), or that is still
 * open an idle period after a GOAWAY either way (destroyed). Streams still moving keep their session; a
 * stalled one has its own send timeout. (A half-sent preface is the listener's: see awaitPreface.)
 */
export function guardSession(session: Http2Session, limits: ConnectionLimits): void {
  let open = 0;
  const onIdle = (): void => {
    if (session.destroyed) return;
    if (session.closed) session.destroy();
    else if (open === 0) session.close();
  };
  // The session's timer restarts on every frame; re-armed when its last stream ends, since an earlier expiry
  // with streams open does not fire again by itself.
  const arm = (): void => void session.setTimeout(limits.idleTimeout, onIdle);
  arm();
  // After a GOAWAY either way the session only waits for its streams: give them one more idle period at most.
  session.once('goaway', arm);
  session.on('stream', (stream: ServerHttp2Stream) => {
    open++;
    stream.once('close', () => {
      if (--open === 0) arm();
    });
  });
}
