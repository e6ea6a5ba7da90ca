// Issue 14, finding 2, behind TLS: the handshake, HTTP/1.1 request heads and idle HTTP/2 sessions are bounded as
// they are on the plain port (HTTP/1.1 over TLS is parsed for the HTTP/2 server, which Node gives no head checks).
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as tcpConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMirror, type TestMirror } from '../fixtures/mirror.js';

let dir: string;
let ca: Buffer;
let mirror: TestMirror;
let port: number;
const closers: Array<{ destroy(): void }> = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'regmirror-tls-limits-'));
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert,
  ]);
  ca = await readFile(cert);
  mirror = await startMirror('none', { config: { tls: { cert, key }, http: { headersTimeout: '1s', idleTimeout: '1s', maxStreamsPerConnection: 10 } } });
  port = Number(new URL(mirror.url).port);
});
afterAll(async () => {
  for (const c of closers.splice(0)) c.destroy();
  await mirror?.close();
  await rm(dir, { recursive: true, force: true });
});

function closesWithin(emitter: Socket | TLSSocket | ClientHttp2Session, ms: number): Promise<number | undefined> {
  const started = Date.now();
  if (emitter.destroyed) return Promise.resolve(0);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    emitter.once('close', () => {
      clearTimeout(timer);
      resolve((Date.now() - started) / 1000);
    });
  });
}

describe('connection limits behind TLS', () => {
  it('drops a connection that never completes the TLS handshake, after headersTimeout', async () => {
    const socket = tcpConnect(port, '127.0.0.1');
    closers.push(socket);
    socket.on('error', () => undefined);
    socket.resume();
    const seconds = await closesWithin(socket, 5_000);
    console.log(`TLS handshake never sent: closed after ${seconds ?? '>5'} s`);
    expect(seconds).toBeDefined();
  });

  it('drops an HTTP/1.1-over-TLS client that drips its request head', async () => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, ALPNProtocols: ['http/1.1'] });
    closers.push(socket);
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    socket.resume();
    const closed = closesWithin(socket, 6_000);
    const head = 'GET /v2/ HTTP/1.1\r\nHost: mirror\r\n';
    for (let i = 0; i < 20 && !socket.destroyed; i++) {
      socket.write(head[i] ?? 'a');
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const seconds = await closed;
    console.log(`HTTP/1.1 over TLS, one byte every 300 ms: closed after ${seconds ?? '>6'} s`);
    expect(seconds).toBeDefined();
  });

  it('limits streams and closes an idle HTTP/2 session', async () => {
    const session = h2connect(mirror.url.replace('http://', 'https://'), { ca });
    closers.push(session);
    session.on('error', () => undefined);
    await new Promise((resolve) => session.once('remoteSettings', resolve));
    expect(session.remoteSettings.maxConcurrentStreams).toBe(10);
    const seconds = await closesWithin(session, 5_000);
    console.log(`idle HTTP/2 session over TLS: closed after ${seconds ?? '>5'} s`);
    expect(seconds).toBeDefined();
  });
});
