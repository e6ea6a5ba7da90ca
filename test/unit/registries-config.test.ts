// The registries a config names (issue 13): `upstreams` entries completed from `upstream` and `tags`; without
// them, Docker Hub alone, so that every single-upstream config means what it meant.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load.js';
import { registriesOf } from '../../src/config/registries.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

async function configFile(text: string): Promise<string> {
  dir = await mkdtemp(join(tmpdir(), 'regmirror-registries-'));
  const file = join(dir, 'config.yaml');
  await writeFile(file, text);
  return file;
}

describe('registriesOf', () => {
  it('is Docker Hub alone, from upstream, when upstreams is absent', () => {
    const { list, defaultName } = registriesOf(parseConfig({ upstream: { url: 'http://127.0.0.1:9', credentials: { username: 'u', password: 'p' } } }));
    expect(defaultName).toBe('docker.io');
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ name: 'docker.io', url: 'http://127.0.0.1:9', credentials: { username: 'u', password: 'p' }, offline: false });
  });

  it("completes each entry from upstream and tags, keeps Docker Hub's account for Docker Hub, and defaults to docker.io", () => {
    const config = parseConfig({
      upstream: { url: 'https://hub.example', headersTimeout: '5s', credentials: { username: 'hub', password: 'secret' } },
      tags: { ttl: '2h' },
      upstreams: [{ name: 'ghcr.io', tags: { ttl: '10m' } }, { name: 'docker.io' }, { name: 'registry.internal:5000', url: 'http://10.0.0.1:5000', headersTimeout: '1s' }],
    });
    const { list, defaultName } = registriesOf(config);
    expect(defaultName).toBe('docker.io');
    const [ghcr, hub, internal] = list;
    expect(ghcr).toMatchObject({ name: 'ghcr.io', url: 'https://ghcr.io', headersTimeout: 5000, credentials: undefined, tags: { ttl: 600_000 } });
    expect(hub).toMatchObject({ name: 'docker.io', url: 'https://hub.example', credentials: { username: 'hub' }, tags: { ttl: 7_200_000 } });
    expect(internal).toMatchObject({ url: 'http://10.0.0.1:5000', headersTimeout: 1000 });
  });

  it('takes the first entry as the default when docker.io is not among them, and is offline everywhere with upstream.url none', () => {
    expect(registriesOf(parseConfig({ upstreams: [{ name: 'ghcr.io' }, { name: 'quay.io' }] })).defaultName).toBe('ghcr.io');
    const offline = registriesOf(parseConfig({ upstream: { url: 'none' }, upstreams: [{ name: 'ghcr.io' }, { name: 'docker.io' }] }));
    expect(offline.list.map((r) => [r.url, r.offline])).toEqual([
      ['none', true],
      ['none', true],
    ]);
  });

  it("keeps each registry's trust its own: Docker Hub's realms and account, and a renamed upstream's URL", () => {
    const config = parseConfig({
      upstream: { name: 'registry.internal', url: 'https://registry.internal', authRealms: ['sso.corp.example'] },
      upstreams: [{ name: 'index.docker.io' }, { name: 'registry.internal' }, { name: 'ghcr.io' }],
    });
    const [hub, internal, ghcr] = registriesOf(config).list;
    expect(hub).toMatchObject({ name: 'docker.io', url: 'https://registry-1.docker.io', authRealms: [] });
    expect(internal).toMatchObject({ name: 'registry.internal', url: 'https://registry.internal', authRealms: ['sso.corp.example'] });
    expect(ghcr).toMatchObject({ authRealms: [] });
    expect(registriesOf(config).defaultName).toBe('docker.io');
  });

  it('refuses a registry named twice, or a name that is no registry host', () => {
    expect(() => parseConfig({ upstreams: [{ name: 'docker.io' }, { name: 'index.docker.io' }] })).toThrow(/each registry may be named once/);
    expect(() => parseConfig({ upstreams: [{ name: 'ghcr.io' }, { name: 'ghcr.io' }] })).toThrow(/each registry may be named once/);
    expect(() => parseConfig({ upstreams: [{ name: 'https://ghcr.io' }] })).toThrow(ConfigError);
    expect(() => parseConfig({ upstreams: [] })).toThrow(ConfigError);
  });
});

describe('${NAME} in the config file', () => {
  it('is the environment variable, so a token stays out of the file', async () => {
    const file = await configFile('upstreams:\n  - name: ghcr.io\n    credentials: { username: bot, password: "${GHCR_TOKEN}" }\n');
    const config = await loadConfig({ file, env: { GHCR_TOKEN: 'ghp_s3cret' } });
    expect(registriesOf(config).list[0]?.credentials).toEqual({ username: 'bot', password: 'ghp_s3cret' });
  });

  it('keeps $${ as a literal ${', async () => {
    const file = await configFile('upstreams:\n  - name: ghcr.io\n    credentials: { username: bot, password: "a$${B}c" }\n');
    const config = await loadConfig({ file, env: {} });
    expect(registriesOf(config).list[0]?.credentials?.password).toBe('a${B}c');
  });

  it('is an error naming the key when the variable is not set, never an empty password', async () => {
    const file = await configFile('upstreams:\n  - name: ghcr.io\n    credentials: { username: bot, password: "${GHCR_TOKEN}" }\n');
    await expect(loadConfig({ file, env: {} })).rejects.toThrow('config: upstreams.0.credentials.password: environment variable GHCR_TOKEN is not set');
  });
});
