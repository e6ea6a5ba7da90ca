// HTTPS: with tls.cert/key the mirror negotiates HTTP/2 or HTTP/1.1 by ALPN, and clients verify it by its CA.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { startMirror, type TestMirror } from '../fixtures/mirror.js';
import { DOCKER_ACCEPT } from '../fixtures/puller.js';

let front: HubFront;
let mirror: TestMirror;
let dir: string;
let ca: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'regmirror-tls-'));
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert,
  ]);
  ca = await readFile(cert);
  front = await startHubFront({ upstream: inject('registryUrl') });
  mirror = await startMirror(front.url, { config: { tls: { cert, key } } });
});
afterAll(async () => {
  await mirror?.close();
  await front?.close();
  await rm(dir, { recursive: true, force: true });
});

const httpsUrl = () => mirror.url.replace('http://', 'https://');

describe('the HTTPS listener', () => {
  it('serves HTTP/1.1 to a client that trusts its certificate', async () => {
    const dispatcher = new Agent({ connect: { ca } });
    const response = await request(`${httpsUrl()}/v2/library/schema2/manifests/1`, { dispatcher, headers: { accept: DOCKER_ACCEPT } });
    expect(response.statusCode).toBe(200);
    expect(response.headers['docker-content-digest']).toBe(inject('images').schema2.digest);
    await response.body.dump();
    await dispatcher.close();
  });

  it('negotiates HTTP/2 by ALPN', async () => {
    const session = connect(httpsUrl(), { ca });
    const status = await new Promise<number>((resolve, reject) => {
      const stream = session.request({ ':path': '/v2/' });
      stream.on('response', (headers) => resolve(Number(headers[':status'])));
      stream.on('error', reject);
      stream.resume();
    });
    const alpn = session.alpnProtocol;
    session.close();
    expect(status).toBe(200);
    expect(alpn).toBe('h2');
  });

  it('is refused by a client that does not trust the certificate', async () => {
    await expect(request(`${httpsUrl()}/v2/`)).rejects.toThrow();
  });
});
