// Owns: the four real clients the e2e tests pull with — dockerd (driven by /usr/bin/docker), containerd (driven
// by ctr), podman and skopeo. Each one reaches "Docker Hub" (or, given client-config's files, every registry)
// only through its own mirror settings pointing at regmirror, keeps all its state in a private directory, and
// reports the digest it pulled in its own words.
// Clients run through async execFile, never the *Sync calls: regmirror shares this process's event loop.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { hostDirsToTidy, processAlive, shortTempDir, socketAccepts, startDaemon, type Daemon } from '../fixtures/daemons.js';

const run = promisify(execFile);

/** Debian's docker.io client, matching dockerd 20.10; /usr/local/bin/docker here is an unrelated newer one. */
const DOCKER = '/usr/bin/docker';
const COMMAND_TIMEOUT_MS = 60_000;

/**
 * When a pull through the mirror fails, dockerd, podman and skopeo fall back to the real docker.io (and ctr to
 * its `server`): a DNS lookup and a connection off this machine. A proxy on a closed loopback port stops that at
 * once; Go never proxies loopback addresses, so the mirror itself is reached directly.
 */
const NO_EGRESS = { HTTPS_PROXY: 'http://127.0.0.1:9', HTTP_PROXY: 'http://127.0.0.1:9', https_proxy: 'http://127.0.0.1:9', http_proxy: 'http://127.0.0.1:9' };

/** dockerd makes its plugin discovery directory whatever its exec-root. */
const DOCKERD_HOST_DIRS = ['/run/docker', '/run/docker/plugins'];
/** podman 4.3 as root initialises netavark with a fixed run directory, even for a pull. */
const PODMAN_HOST_DIRS = ['/run/containers', '/run/containers/networks'];

export interface ImageRef {
  /** The registry the image belongs to; docker.io when absent. */
  registry?: string;
  /** As on its registry: `library/alpine` on Docker Hub. */
  repo: string;
  tag: string;
}

/** Client files made elsewhere (`regmirror client-config --output`), used instead of the built-in docker.io ones. */
export interface ClientSetup {
  /** containerd: the hosts directory (`<registry>/hosts.toml`) ctr pulls with. */
  hostsDir?: string;
  /** podman, skopeo: the registries.conf they read. */
  registriesConf?: string;
  /** podman: the auth file (`podman login --authfile`) its pulls read, instead of the user's own. */
  authFile?: string;
}

export interface PullClient {
  readonly name: string;
  /** Whether `pull` with `allPlatforms` takes every platform of an index (ctr, skopeo) or only the host's. */
  readonly allPlatforms: boolean;
  /**
   * Pulls `<registry>/<repo>:<tag>` and returns the digest the client reports for it. With `allPlatforms`, every
   * platform of an index where the client can (ctr, skopeo); dockerd and podman always take the host's platform.
   * dockerd mirrors only docker.io: another registry's image is pulled by naming it through the mirror.
   */
  pull(image: ImageRef, o?: { allPlatforms?: boolean }): Promise<string>;
  /** Stops the client's daemon, if it has one, and removes every directory the client used. */
  close(): Promise<void>;
}

export type StartClient = (mirrorUrl: string, setup?: ClientSetup) => Promise<PullClient>;

/** Runs one client command; a failure carries its stderr and, for a daemon's client, the daemon's log tail. */
async function exec(file: string, args: readonly string[], o: { env?: Record<string, string>; daemon?: Daemon } = {}): Promise<string> {
  try {
    const { stdout } = await run(file, args, {
      timeout: COMMAND_TIMEOUT_MS,
      killSignal: 'SIGKILL',
      maxBuffer: 16 * 1024 * 1024,
      env: { ...process.env, ...NO_EGRESS, ...o.env },
    });
    return stdout;
  } catch (err) {
    // execFile's message already holds the command line and its stderr.
    if (o.daemon) return o.daemon.fail((err as Error).message, err);
    throw err;
  }
}

/** `image` as a fully qualified reference, which ctr, podman and skopeo need. */
const qualified = (image: ImageRef): string => `${image.registry ?? 'docker.io'}/${image.repo}:${image.tag}`;

/** registries.conf (containers-registries.conf(5)) sending every docker.io pull to the mirror, over plain HTTP. */
async function writeRegistriesConf(path: string, mirrorUrl: string): Promise<void> {
  const lines = [
    'unqualified-search-registries = ["docker.io"]',
    '[[registry]]',
    'prefix = "docker.io"',
    'location = "docker.io"',
    '[[registry.mirror]]',
    `location = ${JSON.stringify(new URL(mirrorUrl).host)}`,
    'insecure = true',
  ];
  await writeFile(path, `${lines.join('\n')}\n`);
}

/**
 * dockerd with regmirror as its only registry mirror (`registry-mirrors`). An http:// mirror must also be an
 * insecure registry; an https:// one is verified with the CA in /etc/docker/certs.d/<host:port>/ (the caller's).
 */
export async function startDockerd(mirrorUrl: string): Promise<PullClient> {
  const dir = await shortTempDir('dockerd');
  const mirror = new URL(mirrorUrl);
  const socket = join(dir, 'docker.sock');
  const config = {
    'registry-mirrors': [mirror.origin],
    ...(mirror.protocol === 'http:' ? { 'insecure-registries': [mirror.host] } : {}),
    // No overlayfs, iptables or bridge on a CI machine: pulls need none of them.
    'storage-driver': 'vfs',
    iptables: false,
    ip6tables: false,
    bridge: 'none',
  };
  await writeFile(join(dir, 'daemon.json'), JSON.stringify(config));
  // Just before the start: a dockerd of a test file running in parallel may have made them meanwhile.
  const hostDirs = hostDirsToTidy(DOCKERD_HOST_DIRS);
  const daemon = await startDaemon('dockerd', dir, 'dockerd', [
    ...['--config-file', join(dir, 'daemon.json'), '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec')],
    ...['--pidfile', join(dir, 'dockerd.pid'), '-H', `unix://${socket}`],
  ], NO_EGRESS);
  // dockerd runs its own containerd in a separate session, which signalling dockerd's group does not reach:
  // dockerd stops it on SIGTERM, and shutdown() makes sure it did (its pid file goes with the directory).
  const shutdown = async (): Promise<void> => {
    const pidText = await readFile(join(dir, 'exec', 'containerd', 'containerd.pid'), 'utf8').catch(() => '');
    await daemon.stop();
    const containerdPid = Number.parseInt(pidText, 10);
    if (containerdPid > 0) await reapStray(containerdPid, dir);
    await hostDirs.remove();
  };
  const agent = new Agent({ connect: { socketPath: socket }, keepAliveTimeout: 10 });
  try {
    await daemon.waitUntil('API answering /_ping', async () => {
      const res = await request('http://docker/_ping', { dispatcher: agent, headersTimeout: 1_000, bodyTimeout: 1_000 });
      await res.body.dump();
      return res.statusCode === 200;
    });
  } catch (err) {
    await shutdown();
    throw err;
  } finally {
    await agent.close();
  }

  const docker = (...args: string[]) => exec(DOCKER, ['-H', `unix://${socket}`, ...args], { daemon });
  return {
    name: 'dockerd',
    allPlatforms: false,
    async pull(image) {
      const name =
        (image.registry ?? 'docker.io') === 'docker.io'
          ? `${image.repo.replace(/^library\//, '')}:${image.tag}` // docker's short name: docker.io/library/ is implied
          : `${mirror.host}/${image.registry}/${image.repo}:${image.tag}`; // the mirror as the registry, the real one as a path prefix
      await docker('pull', '--quiet', name);
      const repoDigest = await docker('image', 'inspect', '--format', '{{index .RepoDigests 0}}', name);
      return repoDigest.trim().split('@')[1] ?? daemon.fail(`no RepoDigest for ${name}: ${repoDigest}`);
    },
    close: shutdown,
  };
}

/**
 * A process the client's daemon started that should have ended with it: given 5 s, then SIGKILLed by pid, but
 * only when its command line still names our directory (the pid cannot have been reused for something else).
 */
async function reapStray(pid: number, dir: string): Promise<void> {
  for (let waited = 0; waited < 5_000; waited += 100) {
    if (!(await processAlive(pid))) return;
    await sleep(100);
  }
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (cmdline.includes(dir)) process.kill(pid, 'SIGKILL');
}

/**
 * containerd 1.6 with the CRI plugin off, and ctr pulling with a hosts directory (containerd docs/hosts.md) whose
 * docker.io entry lists regmirror before the real server; the scheme in the host key is what makes it plain HTTP.
 */
export async function startContainerd(mirrorUrl: string, setup: ClientSetup = {}): Promise<PullClient> {
  const dir = await shortTempDir('containerd');
  const socket = join(dir, 'containerd.sock');
  const toml = (s: string) => JSON.stringify(s); // a TOML basic string, for the plain paths used here
  const config = [
    'version = 2',
    `root = ${toml(join(dir, 'root'))}`,
    `state = ${toml(join(dir, 'state'))}`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = ${toml(socket)}`,
    '[ttrpc]',
    `  address = ${toml(`${socket}.ttrpc`)}`,
    '[debug]',
    `  address = ${toml(join(dir, 'debug.sock'))}`,
  ];
  await writeFile(join(dir, 'config.toml'), `${config.join('\n')}\n`);
  const hostsDir = setup.hostsDir ?? join(dir, 'certs.d');
  if (setup.hostsDir === undefined) {
    await mkdir(join(hostsDir, 'docker.io'), { recursive: true });
    const hosts = [
      'server = "https://registry-1.docker.io"',
      `[host.${toml(new URL(mirrorUrl).origin)}]`,
      '  capabilities = ["pull", "resolve"]',
    ];
    await writeFile(join(hostsDir, 'docker.io', 'hosts.toml'), `${hosts.join('\n')}\n`);
  }
  const daemon = await startDaemon('containerd', dir, 'containerd', ['--config', join(dir, 'config.toml')], NO_EGRESS);
  try {
    await daemon.waitUntil('gRPC socket', () => socketAccepts(socket));
  } catch (err) {
    await daemon.stop();
    throw err;
  }

  const ctr = (...args: string[]) => exec('ctr', ['--address', socket, ...args], { daemon });
  return {
    name: 'containerd',
    allPlatforms: true,
    async pull(image, o = {}) {
      const ref = qualified(image);
      const platforms = o.allPlatforms ? ['--all-platforms'] : [];
      // ctr may print "failed to get content info ... context canceled" while exiting 0: only the status counts.
      await ctr('images', 'pull', '--hosts-dir', hostsDir, '--snapshotter', 'native', ...platforms, ref);
      // Columns: REF TYPE DIGEST SIZE PLATFORMS LABELS.
      const row = (await ctr('images', 'ls')).split('\n').map((l) => l.split(/\s+/)).find((cols) => cols[0] === ref);
      return row?.[2] ?? daemon.fail(`ctr images ls lists no ${ref}`);
    },
    close: () => daemon.stop(),
  };
}

/** podman without a daemon: storage, run state and network config all in a private directory. */
export async function startPodman(mirrorUrl: string, setup: ClientSetup = {}): Promise<PullClient> {
  const dir = await shortTempDir('podman');
  const registriesConf = setup.registriesConf ?? join(dir, 'registries.conf');
  if (setup.registriesConf === undefined) await writeRegistriesConf(registriesConf, mirrorUrl);
  const hostDirs = hostDirsToTidy(PODMAN_HOST_DIRS);
  const podman = (...args: string[]) =>
    exec(
      'podman',
      [
        ...['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--tmpdir', join(dir, 'tmp')],
        ...['--network-config-dir', join(dir, 'net'), '--events-backend', 'none', '--storage-driver', 'vfs'],
        ...args,
      ],
      // TMPDIR: containers/image stages big files there, /var/tmp by default.
      {
        env: {
          CONTAINERS_REGISTRIES_CONF: registriesConf,
          TMPDIR: dir,
          ...(setup.authFile === undefined ? {} : { REGISTRY_AUTH_FILE: setup.authFile }),
        },
      },
    );
  return {
    name: 'podman',
    allPlatforms: false,
    async pull(image) {
      await podman('pull', '--quiet', qualified(image));
      // The digest of the manifest pulled by tag: the index for a multi-platform image.
      return (await podman('image', 'inspect', '--format', '{{.Digest}}', qualified(image))).trim();
    },
    async close() {
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
      await hostDirs.remove();
    },
  };
}

/** skopeo copying into `dir:` layouts, which keep the manifest as pulled, byte for byte. */
export async function startSkopeo(mirrorUrl: string, setup: ClientSetup = {}): Promise<PullClient> {
  const dir = await shortTempDir('skopeo');
  const registriesConf = setup.registriesConf ?? join(dir, 'registries.conf');
  if (setup.registriesConf === undefined) await writeRegistriesConf(registriesConf, mirrorUrl);
  let copies = 0;
  return {
    name: 'skopeo',
    allPlatforms: true,
    async pull(image, o = {}) {
      const out = join(dir, `out-${++copies}`);
      const all = o.allPlatforms ? ['--all'] : [];
      const args = ['copy', '--quiet', '--registries-conf', registriesConf, ...all, `docker://${qualified(image)}`, `dir:${out}`];
      await exec('skopeo', args, { env: { TMPDIR: dir } }); // TMPDIR: not /var/tmp for staged blobs
      return `sha256:${createHash('sha256').update(await readFile(join(out, 'manifest.json'))).digest('hex')}`;
    },
    close: () => rm(dir, { recursive: true, force: true, maxRetries: 3 }),
  };
}

/** Every client, by name, for table-driven tests. */
export const CLIENTS: ReadonlyArray<{ name: string; start: StartClient }> = [
  { name: 'dockerd', start: startDockerd },
  { name: 'containerd (ctr)', start: startContainerd },
  { name: 'podman', start: startPodman },
  { name: 'skopeo', start: startSkopeo },
];
