// dockerd pulls through regmirror's HTTPS listener, trusting it the way Docker documents for a private CA
// (/etc/docker/certs.d/<host:port>/ca.crt) rather than through insecure-registries.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { startMirror, type TestMirror } from '../fixtures/mirror.js';
import { pushE2eImages, type E2eImages } from './images.js';
import { startDockerd } from './pull-clients.js';

const run = promisify(execFile);
const CERTS_D = '/etc/docker/certs.d';

let images: E2eImages;
let front: HubFront;
let work: string;
let mirror: TestMirror | undefined;
/** What this file added under /etc: the host's certs.d directory, and the directories above it that were absent. */
let hostCertsDir: string | undefined;
const madeParents: string[] = [];

beforeAll(async () => {
  images = await pushE2eImages(inject('registryUrl'));
  front = await startHubFront({ upstream: inject('registryUrl') });
  work = await mkdtemp(join(tmpdir(), 'regmirror-https-'));
});

afterAll(async () => {
  await mirror?.close();
  await front?.close();
  if (hostCertsDir !== undefined) await rm(hostCertsDir, { recursive: true, force: true });
  // rmdir: a directory someone else (dockerd's key.json, another host's CA) put something in meanwhile stays.
  for (const dir of madeParents) await rmdir(dir).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
});

/** A self-signed certificate for IP 127.0.0.1 (Go clients ignore the CN: the SAN is what matches). */
async function selfSigned(): Promise<{ cert: string; key: string }> {
  const cert = join(work, 'cert.pem');
  const key = join(work, 'key.pem');
  await run(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1']
      .concat(['-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]),
    { timeout: 30_000 },
  );
  return { cert, key };
}

/** Makes dockerd trust `cert` for `host` (host:port), leaving nothing behind after the file's tests. */
async function trustForDocker(host: string, cert: string): Promise<void> {
  const first = await mkdir(CERTS_D, { recursive: true }); // the topmost directory it had to create, if any
  for (let dir = CERTS_D; first !== undefined && dir.length >= first.length; dir = dirname(dir)) madeParents.push(dir);
  const dir = join(CERTS_D, host);
  await mkdir(dir); // fails if it exists: a CA someone else configured is neither overwritten nor removed
  hostCertsDir = dir;
  await writeFile(join(dir, 'ca.crt'), await readFile(cert));
}

describe('dockerd and the HTTPS listener', () => {
  it('pulls alpine:3.19 and nginx:1.25 through an https:// registry mirror trusted via certs.d', async () => {
    const tls = await selfSigned();
    mirror = await startMirror(front.url, { config: { tls } });
    const httpsUrl = mirror.url.replace(/^http:/, 'https:');
    await trustForDocker(new URL(httpsUrl).host, tls.cert);

    const dockerd = await startDockerd(httpsUrl);
    try {
      expect(await dockerd.pull(images.alpine)).toBe(images.alpine.digest);
      expect(await dockerd.pull(images.nginx)).toBe(images.nginx.digest);
    } finally {
      await dockerd.close();
    }
    await front.idle();
    expect(front.count({ kind: 'blob', method: 'GET' })).toBeGreaterThan(0);
  });
});
