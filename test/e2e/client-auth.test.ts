// Issue 14, must-show 1 with a real client: podman refuses to pull from a mirror with auth.htpasswd until
// `podman login` (a private auth file), then pulls MIRROR/library/nginx:1.25 and gets the pushed index.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { startMirror, type TestMirror } from '../fixtures/mirror.js';
import { pushE2eImages, type E2eImages } from './images.js';
import { startPodman, type PullClient } from './pull-clients.js';

const run = promisify(execFile);

let images: E2eImages;
let front: HubFront;
let mirror: TestMirror;
let dir: string;

beforeAll(async () => {
  images = await pushE2eImages(inject('registryUrl'));
  front = await startHubFront({ upstream: inject('registryUrl') });
  dir = await mkdtemp(join(tmpdir(), 'regmirror-podman-login-'));
  const htpasswd = join(dir, 'htpasswd');
  // `htpasswd -B -b htpasswd ci s3cret` writes the same $2y$ line; there is no apache2-utils here.
  await writeFile(htpasswd, `ci:${bcrypt.hashSync('s3cret', 10).replace(/^\$2b\$/, '$2y$')}\n`);
  mirror = await startMirror(front.url, { config: { auth: { htpasswd, authenticated: ['docker.io/library/*'] } } });
});

afterAll(async () => {
  await mirror?.close();
  await front?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('podman against a mirror with auth.htpasswd', () => {
  let client: PullClient | undefined;
  afterAll(() => client?.close());

  it('is refused before login, and after `podman login` pulls MIRROR/library/nginx:1.25 with the pushed digest', async () => {
    const host = new URL(mirror.url).host;
    // The mirror itself as a plain-HTTP registry; podman's own state and credentials stay in `dir`.
    const registriesConf = join(dir, 'registries.conf');
    await writeFile(registriesConf, `[[registry]]\nlocation = ${JSON.stringify(host)}\ninsecure = true\n`);
    const authFile = join(dir, 'auth.json');
    await writeFile(authFile, '{"auths":{}}\n'); // podman reads a named auth file even before any login
    client = await startPodman(mirror.url, { registriesConf, authFile });
    const nginx = { registry: host, repo: 'library/nginx', tag: '1.25' };

    await expect(client.pull(nginx)).rejects.toThrow(/unauthorized|authentication required/i);

    const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: registriesConf };
    const login = ['login', '--tls-verify=false', '--authfile', authFile, '-u', 'ci', '-p'];
    await expect(run('podman', [...login, 'wrong', host], { env, timeout: 60_000 })).rejects.toThrow(/401|unauthorized|invalid/i);
    const { stdout } = await run('podman', [...login, 's3cret', host], { env, timeout: 60_000 });
    expect(stdout).toMatch(/Login Succeeded/);

    expect(await client.pull(nginx)).toBe(images.nginx.digest);
  });

  it('pulls docker.io/library/alpine:3.19 with regmirror as its docker.io mirror, with the login of the mirror host', async () => {
    // podman (containers/image) looks credentials up per mirror host: the login of the test above (same auth
    // file) serves mirror pulls too; anonymous clients may pull nothing here, so without it this is refused.
    const mirrored = await startPodman(mirror.url, { authFile: join(dir, 'auth.json') });
    try {
      expect(await mirrored.pull(images.alpine)).toBe(images.alpine.digest);
    } finally {
      await mirrored.close();
    }
  });
});
