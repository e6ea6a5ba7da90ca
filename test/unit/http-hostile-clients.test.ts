// Issue 14, finding 2: slow, idle and non-reading clients cannot hold connections, streams or buffers forever.
// An in-process mirror on loopback, its upstream a fault server holding one blob; every loop bounded.
import { createHash, randomBytes } from 'node:crypto';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { startFaultServer, type FaultServer } from '../faults/server.js';
import { metricValue, startMirror, type TestMirror } from '../fixtures/mirror.js';

/** Far more than loopback's socket buffers hold (128 KiB receive + 4 MiB send here): a paused reader stalls the send. */
const BLOB = randomBytes(16 * 2 ** 20);
const DIGEST = `sha256:${createHash('sha256').update(BLOB).digest('hex')}`;
const BLOB_PATH = `/v2/library/big/blobs/${DIGEST}`;

let upstream: FaultServer;
const mirrors: TestMirror[] = [];
const sockets: Socket[] = [];
const sessions: ClientHttp2Session[] = [];

beforeAll(async () => {
  upstream = await startFaultServer((req, res) => {
    if (req.url?.startsWith(BLOB_PATH)) {
      res.writeHead(200, { 'content-length': BLOB.length, 'content-type': 'application/octet-stream' });
      res.end(BLOB);
    } else {
      res.writeHead(req.url === '/v2/' ? 200 : 404, { 'content-type': 'application/json' });
      res.end('{}');
    }
  });
});
afterAll(async () => {
  await upstream?.close();
});
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const session of sessions.splice(0)) session.destroy();
  await Promise.all(mirrors.splice(0).map((m) => m.close()));
});

async function mirrorWith(http: NonNullable<ConfigInput['http']>): Promise<{ mirror: TestMirror; port: number }> {
  const mirror = await startMirror(upstream.url, { config: { http } });
  mirrors.push(mirror);
  return { mirror, port: Number(new URL(mirror.url).port) };
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    sockets.push(socket);
    socket.on('error', () => undefined);
    socket.once('error', reject);
  });
}

function h2(port: number): Promise<ClientHttp2Session> {
  const session = h2connect(`http://127.0.0.1:${port}`);
  sessions.push(session);
  session.on('error', () => undefined);
  return new Promise((resolve) => session.once('remoteSettings', () => resolve(session)));
}

/** Resolves true when `socket` closes within `ms`, false otherwise. */
function closesWithin(emitter: Socket | ClientHttp2Session, ms: number): Promise<boolean> {
  if (emitter.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    emitter.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Fills the mirror's cache with the blob, so later requests are served from disk by send-file. */
async function warm(mirror: TestMirror): Promise<void> {
  const response = await fetch(`${mirror.url}${BLOB_PATH}`);
  expect((await response.arrayBuffer()).byteLength).toBe(BLOB.length);
  // The download commits just after its last byte went out: wait (bounded) until a request is a cache hit.
  for (let i = 0; i < 50 && metricValue(await mirror.metrics(), 'regmirror_cache_requests_total', { kind: 'blob', result: 'hit' }) === 0; i++) {
    await sleep(100);
    await (await fetch(`${mirror.url}${BLOB_PATH}`, { headers: { range: 'bytes=0-0' } })).arrayBuffer();
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Client connections the mirror holds open, as its listening socket counts them. */
function serverConnections(mirror: TestMirror): Promise<number> {
  return new Promise((resolve, reject) => mirror.mirror.server.server.getConnections((err, count) => (err ? reject(err) : resolve(count))));
}

/** Polls (every 100 ms, `ms` at most) until the mirror holds no connection; resolves with the seconds taken, or undefined. */
async function drained(mirror: TestMirror, ms: number): Promise<number | undefined> {
  const started = Date.now();
  for (let i = 0; i < ms / 100; i++) {
    if ((await serverConnections(mirror)) === 0) return (Date.now() - started) / 1000;
    await sleep(100);
  }
  return undefined;
}

describe('hostile HTTP clients', () => {
  it('closes 200 slowloris connections (one header byte a second) soon after headersTimeout', async () => {
    const { port } = await mirrorWith({ headersTimeout: '2s' });
    const clients = await Promise.all(Array.from({ length: 200 }, () => open(port)));
    const head = 'GET /v2/ HTTP/1.1\r\nHost: mirror\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n';
    const started = Date.now();
    const closed = clients.map((socket) => closesWithin(socket, 8_000));
    // One byte a second to every open connection, 8 ticks at most.
    for (let tick = 0; tick < 8 && clients.some((s) => !s.destroyed); tick++) {
      for (const socket of clients) if (!socket.destroyed) socket.write(head[tick] ?? 'a');
      await sleep(1_000);
    }
    const results = await Promise.all(closed);
    const seconds = (Date.now() - started) / 1000;
    console.log(`slowloris: ${results.filter(Boolean).length}/200 connections closed after ${seconds.toFixed(1)} s`);
    expect(results.every(Boolean)).toBe(true);
    expect(seconds).toBeLessThan(6);
  });

  it('closes an idle h2c session after idleTimeout', async () => {
    const { mirror, port } = await mirrorWith({ idleTimeout: '1s' });
    const session = await h2(port);
    const status = await new Promise<number>((resolve, reject) => {
      const stream = session.request({ ':path': '/v2/' });
      stream.on('response', (headers) => resolve(Number(headers[':status'])));
      stream.on('error', reject);
      stream.resume();
    });
    expect(status).toBe(200);
    const started = Date.now();
    const closed = await closesWithin(session, 5_000);
    console.log(`idle h2c session: closed=${closed} after ${((Date.now() - started) / 1000).toFixed(1)} s; mirror ${mirror.url}`);
    expect(closed).toBe(true);
  });

  it('closes a connection whose HTTP/2 preface stops halfway, after headersTimeout', async () => {
    const { mirror, port } = await mirrorWith({ headersTimeout: '1s' });
    const socket = await open(port);
    socket.write('PRI * HTTP/2.0\r\n');
    socket.resume();
    const seconds = await drained(mirror, 5_000);
    console.log(`half-sent h2 preface: ${seconds === undefined ? 'still open after 5 s' : `closed after ${seconds} s`}`);
    expect(seconds).toBeDefined();
    expect(await closesWithin(socket, 1_000)).toBe(true);
  });

  it('cuts a response whose client stopped reading, after idleTimeout without progress', async () => {
    const { mirror, port } = await mirrorWith({ idleTimeout: '1s' });
    await warm(mirror);
    // A client that reads gets the whole blob from disk, however long that takes.
    expect((await (await fetch(`${mirror.url}${BLOB_PATH}`)).arrayBuffer()).byteLength).toBe(BLOB.length);
    const before = process.memoryUsage();
    const socket = await open(port);
    // Never read: the kernel buffers fill, then the mirror's writes stop completing.
    socket.pause();
    socket.write(`GET ${BLOB_PATH} HTTP/1.1\r\nHost: mirror\r\n\r\n`);
    await sleep(300);
    const during = await serverConnections(mirror);
    const seconds = await drained(mirror, 6_000);
    const after = process.memoryUsage();
    console.log(
      `paused reader: ${during} connection open; ${seconds === undefined ? 'still open after 6 s' : `closed after ${seconds} s`}; ` +
        `rss ${(before.rss / 2 ** 20).toFixed(0)} → ${(after.rss / 2 ** 20).toFixed(0)} MiB`,
    );
    expect(during).toBeGreaterThanOrEqual(1);
    expect(seconds).toBeDefined();
  });

  it('cuts a response streamed from a download whose client stopped reading, after idleTimeout', async () => {
    const { mirror, port } = await mirrorWith({ idleTimeout: '1s' });
    const socket = await open(port);
    socket.pause();
    // Not cached: served from the download in progress through a pipeline, not by send-file.
    socket.write(`GET ${BLOB_PATH} HTTP/1.1\r\nHost: mirror\r\n\r\n`);
    const seconds = await drained(mirror, 6_000);
    console.log(`paused reader of a streamed blob: ${seconds === undefined ? 'still open after 6 s' : `closed after ${seconds} s`}`);
    expect(seconds).toBeDefined();
  });

  it("closes an h2c session after the client's GOAWAY even when its last stream stopped reading", async () => {
    const { port } = await mirrorWith({ idleTimeout: '1s' });
    const session = await h2(port);
    // Not cached: streamed from the download in progress, so send-file's timeout does not apply.
    const stream = session.request({ ':path': BLOB_PATH });
    stream.on('error', () => undefined);
    stream.pause();
    await new Promise((resolve) => stream.once('response', resolve));
    session.close();
    const started = Date.now();
    const closed = await closesWithin(session, 6_000);
    console.log(`h2c session after GOAWAY with a paused stream: closed=${closed} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect(closed).toBe(true);
  });

  it('lets one h2 session open at most maxStreamsPerConnection streams at once', async () => {
    const { mirror, port } = await mirrorWith({ maxStreamsPerConnection: 10, idleTimeout: '30s' });
    await warm(mirror);
    const session = await h2(port);
    expect(session.remoteSettings.maxConcurrentStreams).toBe(10);
    let answered = 0;
    let refused = 0;
    for (let i = 0; i < 25; i++) {
      const stream = session.request({ ':path': BLOB_PATH });
      stream.on('response', () => answered++);
      stream.on('error', () => refused++);
      // Paused: each stream stays open, holding its slot.
      stream.pause();
    }
    await sleep(1_500);
    console.log(`25 paused streams on one session: ${answered} answered, ${refused} refused, the rest queued by the client`);
    expect(answered).toBe(10);
  });

  it('refuses connections beyond maxConnections', async () => {
    const { port } = await mirrorWith({ maxConnections: 5 });
    const clients = await Promise.all(Array.from({ length: 8 }, () => open(port)));
    const closed = await Promise.all(clients.map((socket) => closesWithin(socket, 1_000)));
    expect(closed.filter(Boolean).length).toBe(3);
  });
});
