// `regmirror client-config`: each client's files byte for byte (containerd hosts.toml, registries.conf, k3s
// registries.yaml, daemon.json), and the command: printed or written, from the config's registries, and one-line
// usage errors.
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { clientConfigCommand } from '../../src/cli/client-config.js';
import { clientConfig, formatClientConfig, parseMirrorUrl, type RegistryTarget } from '../../src/cli/client-files.js';
import { UsageError } from '../../src/cli/command.js';

const HTTP_MIRROR = new URL('http://mirror.example.internal:5000');
const HTTPS_MIRROR = new URL('https://mirror.example.internal');

const HUB: RegistryTarget = { name: 'docker.io', url: 'https://registry-1.docker.io' };
const GHCR: RegistryTarget = { name: 'ghcr.io', url: 'https://ghcr.io' };
const PRIVATE: RegistryTarget = { name: 'registry.internal.example:5000', url: 'http://registry.internal.example:5000' };

describe('containerd hosts.toml', () => {
  it('writes <registry>/hosts.toml per registry: its real server, then the mirror host for pull and resolve', () => {
    const { files, notes } = clientConfig('containerd', HTTP_MIRROR, [HUB, GHCR]);
    expect(files).toEqual([
      {
        path: 'docker.io/hosts.toml',
        text: 'server = "https://registry-1.docker.io"\n\n[host."http://mirror.example.internal:5000"]\n  capabilities = ["pull", "resolve"]\n',
      },
      {
        path: 'ghcr.io/hosts.toml',
        text: 'server = "https://ghcr.io"\n\n[host."http://mirror.example.internal:5000"]\n  capabilities = ["pull", "resolve"]\n',
      },
    ]);
    expect(notes).toEqual([]);
  });

  it('names the directory of a registry with a port host:port, as images name it, and keeps an http server', () => {
    const [file] = clientConfig('containerd', HTTPS_MIRROR, [PRIVATE]).files;
    expect(file?.path).toBe('registry.internal.example:5000/hosts.toml');
    expect(file?.text).toBe('server = "http://registry.internal.example:5000"\n\n[host."https://mirror.example.internal"]\n  capabilities = ["pull", "resolve"]\n');
  });

  it("falls back to the registry's public origin when the mirror has no upstream URL (offline)", () => {
    const files = clientConfig('containerd', HTTP_MIRROR, [{ name: 'docker.io', url: 'none' }, { name: 'quay.io', url: 'none' }]).files;
    expect(files.map((f) => f.text.split('\n')[0])).toEqual(['server = "https://registry-1.docker.io"', 'server = "https://quay.io"']);
  });
});

describe('podman / CRI-O registries.conf', () => {
  it('mirrors each registry at <mirror host>/<registry>, insecure over http, searching docker.io for short names', () => {
    const { files, notes } = clientConfig('podman', HTTP_MIRROR, [HUB, GHCR]);
    expect(files).toEqual([
      {
        path: 'registries.conf',
        text: [
          'unqualified-search-registries = ["docker.io"]',
          '',
          '[[registry]]',
          'prefix = "docker.io"',
          'location = "docker.io"',
          '',
          '[[registry.mirror]]',
          'location = "mirror.example.internal:5000/docker.io"',
          'insecure = true',
          '',
          '[[registry]]',
          'prefix = "ghcr.io"',
          'location = "ghcr.io"',
          '',
          '[[registry.mirror]]',
          'location = "mirror.example.internal:5000/ghcr.io"',
          'insecure = true',
          '',
        ].join('\n'),
      },
    ]);
    expect(notes).toEqual([]);
  });

  it('leaves insecure out for an https mirror, and the search list without docker.io', () => {
    const text = clientConfig('podman', HTTPS_MIRROR, [GHCR]).files[0]?.text;
    expect(text).toBe('[[registry]]\nprefix = "ghcr.io"\nlocation = "ghcr.io"\n\n[[registry.mirror]]\nlocation = "mirror.example.internal/ghcr.io"\n');
  });

  it('leaves out a registry with a port (no path component can hold one) and says so', () => {
    const { files, notes } = clientConfig('podman', HTTP_MIRROR, [GHCR, PRIVATE]);
    expect(files[0]?.text).not.toContain('registry.internal.example');
    expect(notes).toEqual([expect.stringMatching(/^registry\.internal\.example:5000: left out; .*path prefix/)]);
  });
});

describe('k3s registries.yaml', () => {
  it('lists the mirror as the one endpoint of every registry', () => {
    const { files } = clientConfig('k3s', HTTP_MIRROR, [HUB, GHCR, PRIVATE]);
    expect(files.map((f) => f.path)).toEqual(['registries.yaml']);
    expect(parseYaml(files[0]?.text ?? '')).toEqual({
      mirrors: {
        'docker.io': { endpoint: ['http://mirror.example.internal:5000'] },
        'ghcr.io': { endpoint: ['http://mirror.example.internal:5000'] },
        'registry.internal.example:5000': { endpoint: ['http://mirror.example.internal:5000'] },
      },
    });
    expect(files[0]?.text).toBe('mirrors:\n  "docker.io":\n    endpoint:\n      - "http://mirror.example.internal:5000"\n' +
      '  "ghcr.io":\n    endpoint:\n      - "http://mirror.example.internal:5000"\n' +
      '  "registry.internal.example:5000":\n    endpoint:\n      - "http://mirror.example.internal:5000"\n');
  });
});

describe('docker daemon.json', () => {
  it('sets registry-mirrors (Docker Hub only) and insecure-registries for http, and says how other registries are pulled', () => {
    const { files, notes } = clientConfig('docker', HTTP_MIRROR, [HUB, GHCR, PRIVATE]);
    expect(files.map((f) => f.path)).toEqual(['daemon.json']);
    expect(JSON.parse(files[0]?.text ?? '')).toEqual({
      'registry-mirrors': ['http://mirror.example.internal:5000'],
      'insecure-registries': ['mirror.example.internal:5000'],
    });
    expect(notes[0]).toBe('dockerd mirrors only Docker Hub (registry-mirrors); pull other registries through the mirror by name:');
    expect(notes[1]).toBe('  docker pull mirror.example.internal:5000/ghcr.io/<repository>:<tag>');
    expect(notes[2]).toMatch(/^registry\.internal\.example:5000: left out/);
    expect(notes).toHaveLength(3);
  });

  it('over https needs no insecure-registries; without docker.io it sets no registry-mirrors', () => {
    expect(JSON.parse(clientConfig('docker', HTTPS_MIRROR, [HUB]).files[0]?.text ?? '')).toEqual({ 'registry-mirrors': ['https://mirror.example.internal'] });
    expect(clientConfig('docker', HTTPS_MIRROR, [HUB]).notes).toEqual(['dockerd mirrors only Docker Hub (registry-mirrors)']);
    const ghcrOnly = clientConfig('docker', HTTPS_MIRROR, [GHCR]);
    expect(JSON.parse(ghcrOnly.files[0]?.text ?? '')).toEqual({});
    expect(ghcrOnly.notes[0]).toMatch(/which this mirror does not serve; pull other registries/);
  });
});

describe('parseMirrorUrl', () => {
  it.each(['http://mirror:5000', 'https://mirror.example.internal', 'http://127.0.0.1:5000/', 'http://[::1]:5000'])('accepts %s', (text) => {
    expect(parseMirrorUrl(text)).toBeInstanceOf(URL);
  });

  it.each(['mirror:5000', 'ftp://mirror', 'http://mirror:5000/v2', 'http://mirror?x=1', 'http://u:p@mirror', 'not a url'])('refuses %s', (text) => {
    expect(parseMirrorUrl(text)).toBeUndefined();
  });
});

describe('regmirror client-config', () => {
  let dir: string;
  let printed: string;
  const ctx = (args: string[], configFile?: string) => ({ args, configFile, env: {}, out: (text: string) => void (printed += text) });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'regmirror-client-config-'));
    printed = '';
  });

  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function configFile(): Promise<string> {
    const file = join(dir, 'regmirror.yaml');
    await writeFile(file, 'upstreams:\n  - name: docker.io\n  - name: ghcr.io\n');
    return file;
  }

  it('prints each file of every configured registry after a "# <path>" line', async () => {
    await clientConfigCommand(ctx(['containerd', '--mirror', 'http://mirror:5000', '--config', await configFile()]));
    expect(printed).toBe(
      '# docker.io/hosts.toml\nserver = "https://registry-1.docker.io"\n\n[host."http://mirror:5000"]\n  capabilities = ["pull", "resolve"]\n\n' +
        '# ghcr.io/hosts.toml\nserver = "https://ghcr.io"\n\n[host."http://mirror:5000"]\n  capabilities = ["pull", "resolve"]\n',
    );
  });

  it('writes the same files under --output (directories made) and prints their paths', async () => {
    const out = join(dir, 'certs.d');
    await clientConfigCommand(ctx(['containerd', '--mirror=http://mirror:5000', '--output', out], await configFile()));
    expect(printed).toBe(`${join(out, 'docker.io/hosts.toml')}\n${join(out, 'ghcr.io/hosts.toml')}\n`);
    expect((await readdir(out)).sort()).toEqual(['docker.io', 'ghcr.io']);
    const expected = clientConfig('containerd', new URL('http://mirror:5000'), [HUB, GHCR]).files;
    for (const file of expected) expect(await readFile(join(out, file.path), 'utf8')).toBe(file.text);
  });

  it('with no upstreams configured, covers Docker Hub alone, at upstream.url', async () => {
    await clientConfigCommand(ctx(['docker', '--mirror', 'https://mirror.example.internal']));
    expect(printed).toBe(formatClientConfig(clientConfig('docker', HTTPS_MIRROR, [HUB])));
    expect(printed).toBe('# daemon.json\n{\n  "registry-mirrors": [\n    "https://mirror.example.internal"\n  ]\n}\n\n# dockerd mirrors only Docker Hub (registry-mirrors)\n');
  });

  it.each([
    [['crio', '--mirror', 'http://m:5000'], 'client-config: unknown client "crio", expected one of containerd, podman, k3s, docker'],
    [['--mirror', 'http://m:5000'], 'client-config: which client? one of containerd, podman, k3s, docker'],
    [['podman'], 'client-config: --mirror URL is required (http://host:port as clients reach the mirror)'],
    [['podman', '--mirror', 'm:5000'], /^client-config: --mirror must be an http\(s\) URL without path/],
    [['podman', 'k3s', '--mirror', 'http://m:5000'], 'client-config: unexpected argument "k3s"'],
    [['podman', '--mirror'], 'client-config: --mirror needs a value'],
  ])('refuses %j with a one-line usage error', async (args, message) => {
    const err: unknown = await clientConfigCommand(ctx(args)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).message).toMatch(message);
    expect((err as UsageError).message).not.toContain('\n');
    expect(printed).toBe('');
  });
});
