// One plain-text port for both HTTP/1.1 and HTTP/2 with prior knowledge (h2c). node:http2's allowHTTP1 works
// only behind TLS (ALPN), and docker/containerd speak HTTP/1.1 to an http:// mirror, so the first bytes of
// each connection decide: the HTTP/2 preface starts with "PRI ", no HTTP/1 request line does.
import type { Server as Http1Server } from 'node:http';
import type { Http2Server } from 'node:http2';
import { createServer, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';

/** A connection that sends nothing for `headersTimeout` ms is dropped before it ties up a slot. */
export function createSniffingListener(http1: Http1Server, http2: Http2Server, headersTimeout: number): Server {
  return createServer((socket) => {
    socket.setTimeout(headersTimeout, () => socket.destroy());
    socket.once('data', (first: Buffer) => {
      socket.setTimeout(0);
      socket.pause();
      if (first.subarray(0, 4).toString('latin1') === 'PRI ') {
        awaitPreface(socket, first.length, headersTimeout);
        http2.emit('connection', replaying(socket, first));
      } else {
        // http's parser also reads what was unshifted back into the socket.
        socket.unshift(first);
        http1.emit('connection', socket);
        socket.resume();
      }
    });
    socket.on('error', () => socket.destroy());
  });
}

/** The client preface (24 bytes) and the header of the SETTINGS frame that must follow it (RFC 9113 §3.4). */
const PREFACE_BYTES = 24 + 9;

/**
 * A client that stops partway through its preface is cut after `ms`. Destroying its HTTP/2 session is not
 * enough: nghttp2 waits for the preface before it lets the session end its socket, so the socket itself goes.
 */
function awaitPreface(socket: Socket, received: number, ms: number): void {
  if (received >= PREFACE_BYTES) return;
  let seen = received;
  const timer = setTimeout(() => socket.destroy(), ms);
  const count = (chunk: Buffer): void => {
    seen += chunk.length;
    if (seen < PREFACE_BYTES) return;
    clearTimeout(timer);
    socket.off('data', count);
  };
  socket.on('data', count);
  socket.once('close', () => clearTimeout(timer));
}

/**
 * The HTTP/2 session reads its socket's handle directly and would miss the bytes we already read, so it gets
 * a Duplex that replays them first, then relays the socket.
 */
function replaying(socket: Socket, first: Buffer): Duplex {
  const duplex = new Duplex({
    read: () => void socket.resume(),
    write: (chunk: Buffer, _encoding, callback) => void socket.write(chunk, callback),
    final: (callback) => void socket.end(callback),
    destroy: (err, callback) => {
      socket.destroy(err ?? undefined);
      callback(err);
    },
  });
  duplex.push(first);
  socket.on('data', (chunk: Buffer) => {
    if (!duplex.push(chunk)) socket.pause();
  });
  socket.on('end', () => duplex.push(null));
  socket.on('close', () => duplex.destroy());
  Object.assign(duplex, { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort });
  return duplex;
}
