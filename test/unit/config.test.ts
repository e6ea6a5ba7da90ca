// loadConfig + the schema: defaults, YAML file, explicit env overrides, and one-line errors that name the key.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig, parseConfig, type LoadOptions } from '../../src/config/load.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'regmirror-config-'));
});

afterEach(async () => {
  vi.unstubAllEnvs();
  await rm(dir, { recursive: true, force: true });
});

async function yamlFile(text: string): Promise<string> {
  const file = join(dir, 'regmirror.yaml');
  await writeFile(file, text);
  return file;
}

async function configErrorOf(options: LoadOptions): Promise<ConfigError> {
  try {
    await loadConfig(options);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw new Error(`expected a ConfigError, got ${String(err)}`);
  }
  throw new Error('expected a ConfigError, but the config loaded');
}

describe('defaults', () => {
  it('listens on 127.0.0.1:5000, stores in ./data and mirrors Docker Hub with durations in milliseconds', async () => {
    const config = await loadConfig();
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 5000 });
    expect(config.dataDir).toBe('./data');
    expect(config.upstream.url).toBe('https://registry-1.docker.io');
    expect(config.upstream.name).toBe('docker.io');
    expect(config.upstream.connections).toBe(16);
    expect(config.upstream.connectTimeout).toBe(10_000);
    expect(config.upstream.headersTimeout).toBe(30_000);
    expect(config.upstream.bodyTimeout).toBe(30_000);
    expect(config.upstream.fillTimeout).toBe(3_600_000);
    expect(config.shutdownTimeout).toBe(10_000);
    expect(config.log.level).toBe('info');
    expect(config.cache).toEqual({
      metadataEntries: 50_000,
      blobTableEntries: 2_000_000,
      manifestMemoryBytes: 64 * 2 ** 20,
      prefetchBlobs: 0,
      maxBytes: undefined,
      highWatermark: 0.9,
      lowWatermark: 0.8,
      pins: [],
      gcInterval: 3_600_000,
      gcGrace: 86_400_000,
    });
  });

  it('takes a quota as a size, and refuses watermarks out of order and pins that are not image references', async () => {
    expect((await loadConfig({ file: await yamlFile('cache:\n  maxBytes: "200GiB"\n') })).cache.maxBytes).toBe(200 * 2 ** 30);
    await expect(loadConfig({ file: await yamlFile('cache:\n  maxBytes: "lots"\n') })).rejects.toThrow(/cache\.maxBytes: expected a size/);
    await expect(loadConfig({ file: await yamlFile('cache:\n  lowWatermark: 0.95\n') })).rejects.toThrow(/lowWatermark must be below highWatermark/);
    await expect(loadConfig({ file: await yamlFile('cache:\n  pins: ["Not An Image"]\n') })).rejects.toThrow(/cache\.pins/);
  });

  it('says "no quota" and "GC off" in words, and still reads the old "0" and "0s" the same way', async () => {
    const builtIn = await loadConfig();
    expect(builtIn.cache.maxBytes).toBeUndefined();
    const off = await loadConfig({ file: await yamlFile('cache:\n  maxBytes: none\n  gcInterval: off\n') });
    expect(off.cache.maxBytes).toBeUndefined();
    expect(off.cache.gcInterval).toBe('off');
    for (const [maxBytes, gcInterval] of [['"0"', '"0s"'], ['0', '"0m"']]) {
      const old = await loadConfig({ file: await yamlFile(`cache:\n  maxBytes: ${maxBytes}\n  gcInterval: ${gcInterval}\n`) });
      expect(old.cache.maxBytes).toBeUndefined();
      expect(old.cache.gcInterval).toBe('off');
    }
    expect((await loadConfig({ file: await yamlFile('cache:\n  gcInterval: 10m\n') })).cache.gcInterval).toBe(600_000);
    await expect(loadConfig({ file: await yamlFile('cache:\n  gcInterval: never\n') })).rejects.toThrow(/cache\.gcInterval: expected a duration .* or "off"/);
  });

  it('does not read process.env: only the env map passed in overrides', async () => {
    vi.stubEnv('REGMIRROR_DATA', '/from/process/env');
    vi.stubEnv('REGMIRROR_LISTEN', '0.0.0.0:1234');
    const config = await loadConfig({});
    expect(config.dataDir).toBe('./data');
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 5000 });
  });

  it('loads an empty YAML file as all defaults', async () => {
    const config = await loadConfig({ file: await yamlFile('') });
    expect(config).toEqual(await loadConfig());
  });
});

describe('YAML file', () => {
  it('overrides the defaults it names and keeps the others', async () => {
    const file = await yamlFile(
      [
        'listen: "0.0.0.0:8080"',
        'dataDir: /var/lib/regmirror',
        'upstream:',
        '  url: https://mirror.example.com',
        '  connections: 4',
        '  connectTimeout: 500ms',
        '  fillTimeout: 2h',
        'log:',
        '  level: debug',
        'shutdownTimeout: 1m',
      ].join('\n'),
    );
    const config = await loadConfig({ file });
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(config.dataDir).toBe('/var/lib/regmirror');
    expect(config.upstream.url).toBe('https://mirror.example.com');
    expect(config.upstream.connections).toBe(4);
    expect(config.upstream.connectTimeout).toBe(500);
    expect(config.upstream.fillTimeout).toBe(7_200_000);
    expect(config.upstream.headersTimeout).toBe(30_000);
    expect(config.log.level).toBe('debug');
    expect(config.shutdownTimeout).toBe(60_000);
  });

  it('normalizes an upstream URL with a trailing slash to its origin', async () => {
    const config = await loadConfig({ file: await yamlFile('upstream:\n  url: https://mirror.example.com/\n') });
    expect(config.upstream.url).toBe('https://mirror.example.com');
  });

  it('rejects a file that is not a mapping', async () => {
    const err = await configErrorOf({ file: await yamlFile('- a\n- b\n') });
    expect(err.message).toMatch(/must hold a mapping/);
    expect(err.message).toMatch(/a list/);
  });
});

describe('environment overrides', () => {
  it('applies REGMIRROR_LISTEN, REGMIRROR_DATA and an http:// REGMIRROR_UPSTREAM', async () => {
    const config = await loadConfig({
      env: {
        REGMIRROR_LISTEN: '0.0.0.0:8080',
        REGMIRROR_DATA: '/srv/cache',
        REGMIRROR_UPSTREAM: 'http://127.0.0.1:5001',
      },
    });
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(config.dataDir).toBe('/srv/cache');
    expect(config.upstream.url).toBe('http://127.0.0.1:5001');
  });

  it('applies REGMIRROR_LOG_LEVEL', async () => {
    expect((await loadConfig({ env: { REGMIRROR_LOG_LEVEL: 'warn' } })).log.level).toBe('warn');
  });

  it('wins over the YAML file and keeps the file’s sibling keys', async () => {
    const file = await yamlFile('dataDir: /from/file\nupstream:\n  url: https://file.example.com\n  connections: 3\n');
    const config = await loadConfig({ file, env: { REGMIRROR_DATA: '/from/env', REGMIRROR_UPSTREAM: 'http://env.example.com:81' } });
    expect(config.dataDir).toBe('/from/env');
    expect(config.upstream.url).toBe('http://env.example.com:81');
    expect(config.upstream.connections).toBe(3);
  });

  it('ignores empty and unlisted variables', async () => {
    const config = await loadConfig({ env: { REGMIRROR_DATA: '', REGMIRROR_DATADIR: '/nope', HOME: '/root' } });
    expect(config.dataDir).toBe('./data');
  });

  it('reports an invalid override under the key it sets', async () => {
    const err = await configErrorOf({ env: { REGMIRROR_LISTEN: 'localhost' } });
    expect(err.message).toMatch(/\blisten\b/);
    expect(err.message).toContain('"localhost"');
  });
});

describe('programmatic overrides', () => {
  it('apply last, over file and env, and merge into nested sections', async () => {
    const file = await yamlFile('upstream:\n  connections: 3\n');
    const config = await loadConfig({
      file,
      env: { REGMIRROR_DATA: '/from/env' },
      overrides: { dataDir: '/from/overrides', upstream: { bodyTimeout: '5s' } },
    });
    expect(config.dataDir).toBe('/from/overrides');
    expect(config.upstream.connections).toBe(3);
    expect(config.upstream.bodyTimeout).toBe(5_000);
  });
});

describe('validation errors', () => {
  it('rejects an unknown top-level key and names it', async () => {
    const err = await configErrorOf({ file: await yamlFile('lisen: "0.0.0.0:5000"\n') });
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain('lisen');
  });

  it('rejects an unknown nested key and names it with its section', async () => {
    const err = await configErrorOf({ file: await yamlFile('upstream:\n  urll: https://example.com\n') });
    expect(err.message).toContain('upstream.urll');
  });

  it('names upstream.connections and what was found when it has the wrong type', async () => {
    const err = await configErrorOf({ file: await yamlFile('upstream:\n  connections: many\n') });
    expect(err.message).toContain('upstream.connections');
    expect(err.message).toContain('"many"');
  });

  it('names the key of a duration that does not parse', async () => {
    const err = await configErrorOf({ file: await yamlFile('upstream:\n  connectTimeout: ten\n') });
    expect(err.message).toContain('upstream.connectTimeout');
    expect(err.message).toContain('"ten"');
  });

  it('rejects a duration given as a bare number and names the key', async () => {
    const err = await configErrorOf({ file: await yamlFile('shutdownTimeout: 10\n') });
    expect(err.message).toContain('shutdownTimeout');
  });

  it.each(['https://example.com/v2', 'https://example.com/v2/', 'ftp://example.com', 'not a url'])(
    'rejects the upstream URL %j',
    async (url) => {
      const err = await configErrorOf({ env: { REGMIRROR_UPSTREAM: url } });
      expect(err.message).toContain('upstream.url');
    },
  );

  it('rejects a listen port above 65535', async () => {
    const err = await configErrorOf({ env: { REGMIRROR_LISTEN: '127.0.0.1:70000' } });
    expect(err.message).toContain('listen');
  });

  it('rejects an empty dataDir', async () => {
    const err = await configErrorOf({ overrides: { dataDir: '' } });
    expect(err.message).toContain('dataDir');
  });

  it('rejects a log level outside the known set', async () => {
    const err = await configErrorOf({ env: { REGMIRROR_LOG_LEVEL: 'verbose' } });
    expect(err.message).toContain('log.level');
  });

  it('rejects a YAML __proto__ key as unknown instead of merging it', async () => {
    const err = await configErrorOf({ file: await yamlFile('__proto__:\n  dataDir: /polluted\n') });
    expect(err.message).toContain('__proto__');
  });

  it('gives a one-line error naming the file when it cannot be read', async () => {
    const missing = join(dir, 'missing.yaml');
    const err = await configErrorOf({ file: missing });
    expect(err.message).toContain(missing);
    expect(err.message).toContain('ENOENT');
    expect(err.message).not.toContain('\n');
  });

  it('gives a one-line error naming the file when it is a directory', async () => {
    const err = await configErrorOf({ file: dir });
    expect(err.message).toContain(dir);
    expect(err.message).not.toContain('\n');
  });

  it('gives a one-line error naming the file when it is not valid YAML', async () => {
    const file = await yamlFile('upstream:\n  url: [unclosed\n  connections: 3\n');
    const err = await configErrorOf({ file });
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/not valid YAML/);
    expect(err.message).not.toContain('\n');
  });
});

describe('the returned config', () => {
  it('is deeply frozen: assigning a top-level or nested key throws', async () => {
    const config = await loadConfig();
    expect(Object.isFrozen(config)).toBe(true);
    expect(() => {
      (config as { dataDir: string }).dataDir = '/elsewhere';
    }).toThrow(TypeError);
    expect(() => {
      (config.upstream as { url: string }).url = 'http://evil.example.com';
    }).toThrow(TypeError);
    expect(() => {
      (config.listen as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(config.dataDir).toBe('./data');
  });

  it('is the same frozen shape from parseConfig on plain input', () => {
    const config = parseConfig({ upstream: { connections: 2 } });
    expect(config.upstream.connections).toBe(2);
    expect(Object.isFrozen(config.upstream)).toBe(true);
  });
});

describe('overrides never hide a malformed file section', () => {
  it('reports `upstream` given as a string even when REGMIRROR_UPSTREAM is set', async () => {
    const file = await yamlFile('upstream: "https://example.test"\n');
    const err = await configErrorOf({ file, env: { REGMIRROR_UPSTREAM: 'http://127.0.0.1:1' } });
    expect(err.message).toContain('upstream');
  });

  it('rejects an upstream URL that carries credentials or a query, without echoing the credentials', async () => {
    const withUser = await configErrorOf({ env: { REGMIRROR_UPSTREAM: 'https://user:secret@example.test' } });
    expect(withUser.message).toContain('upstream.url');
    expect(withUser.message).not.toContain('secret');
    const withQuery = await configErrorOf({ env: { REGMIRROR_UPSTREAM: 'https://example.test/?x=1' } });
    expect(withQuery.message).toContain('upstream.url');
  });
});
