// config/default.yaml documents every key with its default: it must stay exactly what the schema does.
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';

function keyPaths(value: unknown, prefix = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [prefix];
  return Object.entries(value).flatMap(([key, child]) => keyPaths(child, prefix ? `${prefix}.${key}` : key));
}

describe('config/default.yaml', () => {
  it('loads and equals the built-in defaults, key for key', async () => {
    const fromFile = await loadConfig({ file: 'config/default.yaml' });
    const builtIn = await loadConfig({});
    expect(fromFile).toEqual(builtIn);
  });

  it('spells out every key the schema has a default for', async () => {
    const written = parse(await readFile('config/default.yaml', 'utf8')) as unknown;
    const builtIn = await loadConfig({});
    // listen is parsed into {host, port}; durations into ms: compare key names only.
    const expected = keyPaths(builtIn).map((p) => p.replace(/^listen\..*/, 'listen'));
    expect(keyPaths(written).sort()).toEqual([...new Set(expected)].sort());
  });
});

describe('README', () => {
  it('names every config key in its table', async () => {
    const readme = await readFile('README.md', 'utf8');
    const builtIn = await loadConfig({});
    const keys = new Set(keyPaths(builtIn).map((p) => p.replace(/^listen\..*/, 'listen')));
    for (const optional of ['upstream.credentials', 'tls']) keys.add(optional);
    for (const key of keys) expect(readme, key).toContain(`| \`${key}\` |`);
  });
});
