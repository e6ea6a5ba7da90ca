// config/default.yaml documents every key with its default: it must stay exactly what the schema does.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';

describe('config/default.yaml', () => {
  it('loads and equals the built-in defaults, key for key', async () => {
    const fromFile = await loadConfig({ file: 'config/default.yaml' });
    const builtIn = await loadConfig({});
    expect(fromFile).toEqual(builtIn);
  });
});
