// Every registry behind one regmirror (issue 13, "must show" 1–4): two Hub-like fronts, each with its own token
// realm, play "docker.io" (library/alpine:3.19) and "ghcr.io" (owner/tool:1, an OCI index on alpine's base layer).
// Real containerd, podman and skopeo pull one image of each through the mirror with the files `regmirror
// client-config` wrote, verbatim; dockerd pulls docker.io's through registry-mirrors and ghcr.io's by naming it
// through the mirror. Each front must see only its own registry's repositories, the shared layer must come from
// upstream once in all, and a registry the mirror does not serve must be refused without asking any upstream.
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { clientConfigCommand } from '../../src/cli/client-config.js';
import { startHubFront, type FrontRequest, type HubFront } from '../fixtures/hub-front.js';
import { buildLayer, buildOciIndexImage, buildSchema2Image, pushImage, type TestImage } from '../fixtures/images.js';
import { startMirror, type TestMirror } from '../fixtures/mirror.js';
import { hostArchitecture } from './images.js';
import { startContainerd, startDockerd, startPodman, startSkopeo, type ClientSetup, type ImageRef, type StartClient } from './pull-clients.js';

const MiB = 1024 * 1024;
/** Four clients one after another, dockerd's start included; far under, on a quiet machine. */
const PULLS_TIMEOUT_MS = 150_000;

interface Images {
  alpine: TestImage & ImageRef;
  tool: TestImage & ImageRef;
  /** The layer both images are built on. */
  base: string;
}

/**
 * Pushed to the one test registry behind both fronts, so what keeps the registries apart is the mirror alone.
 * The base layer's seed is test/e2e/images.ts's: library/alpine:3.19 comes out byte for byte as there, and other
 * files may push it concurrently.
 */
async function pushImages(registryUrl: string): Promise<Images> {
  const [base, amd64, arm64] = await Promise.all([
    buildLayer({ sizeBytes: 2 * MiB, seed: 'e2e-alpine-base' }),
    buildLayer({ sizeBytes: 1 * MiB, seed: 'e2e-tool-amd64' }),
    buildLayer({ sizeBytes: 1 * MiB, seed: 'e2e-tool-arm64' }),
  ]);
  const alpine = buildSchema2Image({ os: 'linux', architecture: hostArchitecture(), layers: [base] });
  const tool = buildOciIndexImage([
    { os: 'linux', architecture: 'amd64', layers: [base, amd64] },
    { os: 'linux', architecture: 'arm64', layers: [base, arm64] },
  ]);
  const [a, t] = await Promise.all([
    pushImage(registryUrl, 'library/alpine', '3.19', alpine),
    pushImage(registryUrl, 'owner/tool', '1', tool),
  ]);
  return { alpine: { ...a, registry: 'docker.io' }, tool: { ...t, registry: 'ghcr.io' }, base: base.digest };
}

/** Each client as the README sets it up; `setup` is what client-config wrote for it. */
const CLIENTS: ReadonlyArray<{ name: string; start: StartClient; files?: 'containerd' | 'podman' }> = [
  { name: 'containerd (ctr)', start: startContainerd, files: 'containerd' },
  { name: 'podman', start: startPodman, files: 'podman' },
  { name: 'skopeo', start: startSkopeo, files: 'podman' },
  { name: 'dockerd', start: startDockerd },
];

type Outcome = { digests: { alpine: string; tool: string } } | { error: unknown };

let images: Images;
let hub: HubFront;
let ghcr: HubFront;
let mirror: TestMirror;
/** Holds regmirror's config file for client-config and the files it wrote: certs.d/ and containers/. */
let dir: string;
const setup: ClientSetup = {};
/** What `client-config` printed with --output: the paths it wrote, per client. */
const written: Record<'containerd' | 'podman', string> = { containerd: '', podman: '' };
const outcomes = new Map<string, Outcome>();

/** regmirror client-config, run in-process as the command line would run it; returns what it printed. */
async function clientConfig(args: string[]): Promise<string> {
  let printed = '';
  await clientConfigCommand({ args, configFile: undefined, env: {}, out: (text) => void (printed += text) });
  return printed;
}

beforeAll(async () => {
  images = await pushImages(inject('registryUrl'));
  // auth: {} — each front is its own token realm (<front>/token), as ghcr.io's is ghcr.io/token.
  hub = await startHubFront({ upstream: inject('registryUrl'), auth: {} });
  ghcr = await startHubFront({ upstream: inject('registryUrl'), auth: {} });
  const upstreams = [
    { name: 'docker.io', url: hub.url },
    { name: 'ghcr.io', url: ghcr.url },
  ];
  mirror = await startMirror(hub.url, { config: { upstreams } });

  dir = await mkdtemp(join(tmpdir(), 'regmirror-registries-'));
  const configFile = join(dir, 'regmirror.yaml');
  await writeFile(configFile, JSON.stringify({ upstream: { url: hub.url }, upstreams })); // JSON is YAML
  setup.hostsDir = join(dir, 'certs.d');
  setup.registriesConf = join(dir, 'containers', 'registries.conf');
  const common = ['--mirror', mirror.url, '--config', configFile];
  written.containerd = await clientConfig(['containerd', ...common, '--output', setup.hostsDir]);
  written.podman = await clientConfig(['podman', ...common, '--output', join(dir, 'containers')]);

  // One client after another, from the first cold pull on; a client's failure is its own test's failure.
  for (const { name, start, files } of CLIENTS) {
    try {
      const client = await start(mirror.url, files ? setup : {});
      try {
        const alpine = await client.pull(images.alpine);
        const tool = await client.pull(images.tool, { allPlatforms: true });
        outcomes.set(name, { digests: { alpine, tool } });
      } finally {
        await client.close();
      }
    } catch (error) {
      outcomes.set(name, { error });
    }
  }
  await Promise.all([hub.idle(), ghcr.idle()]);
}, PULLS_TIMEOUT_MS);

afterAll(async () => {
  await mirror?.close();
  await Promise.all([hub?.close(), ghcr?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The repository a /v2/ request names, as the front saw it; undefined for /v2/ itself and /token. */
function repositoryOf(r: FrontRequest): string | undefined {
  return /^\/v2\/(.+?)\/(?:manifests|blobs|tags)\//.exec(r.path)?.[1];
}

/** Blob downloads the front answered (a 401 challenge is no download). */
const blobDownloads = (front: HubFront): FrontRequest[] =>
  front.requests.filter((r) => r.kind === 'blob' && r.method === 'GET' && r.status >= 200 && r.status < 300);

/** Programs other than regmirror: a client that went past the mirror to the registry's own server. */
const CLIENT_AGENT = /containerd|docker|containers\/|libpod|skopeo|buildah|Go-http-client/i;

describe('one regmirror in front of "docker.io" and "ghcr.io"', () => {
  it.each(CLIENTS.map((c) => c.name))('%s pulls docker.io/library/alpine:3.19 and ghcr.io/owner/tool:1 through it and gets the pushed digests', (name) => {
    const outcome = outcomes.get(name);
    if (!outcome) throw new Error(`${name} did not run`);
    if ('error' in outcome) throw outcome.error instanceof Error ? outcome.error : new Error(String(outcome.error));
    expect(outcome.digests).toEqual({ alpine: images.alpine.digest, tool: images.tool.digest });
  });

  it("sends each registry's requests to its own upstream only, from regmirror (no client went past it)", () => {
    const repos = (front: HubFront) => [...new Set(front.requests.map(repositoryOf).filter((r) => r !== undefined))];
    expect(repos(hub)).toEqual(['library/alpine']);
    expect(repos(ghcr)).toEqual(['owner/tool']);
    // Each realm issued tokens for its own registry's repository only.
    expect([...new Set(hub.tokensIssued.map((t) => t.scope))]).toEqual(['repository:library/alpine:pull']);
    expect([...new Set(ghcr.tokensIssued.map((t) => t.scope))]).toEqual(['repository:owner/tool:pull']);
    const agents = [...hub.requests, ...ghcr.requests].map((r) => r.userAgent ?? '');
    expect(agents.filter((agent) => CLIENT_AGENT.test(agent))).toEqual([]);
  });

  it('fetches the layer both images share from upstream once in all, and every other blob once', () => {
    const downloads = [...blobDownloads(hub), ...blobDownloads(ghcr)].map((r) => r.path.slice(r.path.lastIndexOf('/') + 1));
    expect(downloads.filter((d) => d === images.base)).toHaveLength(1);
    expect(downloads).toHaveLength(new Set(downloads).size);
    // ghcr.io's image needed only its own blobs: the base came with docker.io's alpine.
    const ghcrBlobs = new Set(blobDownloads(ghcr).map((r) => r.path.slice(r.path.lastIndexOf('/') + 1)));
    expect(ghcrBlobs.has(images.base)).toBe(false);
    expect(ghcrBlobs.size).toBeGreaterThan(0);
  });

  it('answers a registry it does not serve (?ns=quay.io, /v2/quay.io/…) 404 NAME_UNKNOWN naming it, asking no upstream', async () => {
    const before = hub.requests.length + ghcr.requests.length;
    const agent = new Agent({ keepAliveTimeout: 10 });
    try {
      const paths = [
        '/v2/library/alpine/manifests/3.19?ns=quay.io',
        `/v2/library/alpine/blobs/${images.base}?ns=quay.io`, // cached, but not quay.io's to give
        '/v2/quay.io/owner/tool/manifests/1',
      ];
      for (const path of paths) {
        const res = await request(`${mirror.url}${path}`, { dispatcher: agent });
        const body = (await res.body.json()) as { errors?: Array<{ code: string; message: string }> };
        expect({ path, status: res.statusCode, code: body.errors?.[0]?.code }).toEqual({ path, status: 404, code: 'NAME_UNKNOWN' });
        expect(body.errors?.[0]?.message).toContain('quay.io');
      }
    } finally {
      await agent.close();
    }
    await Promise.all([hub.idle(), ghcr.idle()]);
    expect(hub.requests.length + ghcr.requests.length).toBe(before);
  });

  it('gave containerd, podman and skopeo exactly the files client-config makes', async () => {
    const hostsDir = setup.hostsDir ?? '';
    const registriesConf = setup.registriesConf ?? '';
    expect(written.containerd).toBe(`${join(hostsDir, 'docker.io/hosts.toml')}\n${join(hostsDir, 'ghcr.io/hosts.toml')}\n`);
    expect(written.podman).toBe(`${registriesConf}\n`);
    expect((await readdir(hostsDir)).sort()).toEqual(['docker.io', 'ghcr.io']);
    // What the command prints is what it wrote, and what the clients read.
    const configFile = join(dir, 'regmirror.yaml');
    const printed = await clientConfig(['containerd', '--mirror', mirror.url, '--config', configFile]);
    const files = await Promise.all(['docker.io', 'ghcr.io'].map(async (r) => `# ${r}/hosts.toml\n${await readFile(join(hostsDir, r, 'hosts.toml'), 'utf8')}`));
    expect(printed).toBe(files.join('\n'));
    expect(await clientConfig(['podman', '--mirror', mirror.url, '--config', configFile])).toBe(`# registries.conf\n${await readFile(registriesConf, 'utf8')}`);
    // And those files say what the README says: ghcr.io's mirror is the path prefix, containerd's the ns.
    expect(await readFile(registriesConf, 'utf8')).toContain(`location = "${new URL(mirror.url).host}/ghcr.io"`);
    expect(await readFile(join(hostsDir, 'ghcr.io', 'hosts.toml'), 'utf8')).toContain(`[host."${mirror.url}"]`);
  });
});
