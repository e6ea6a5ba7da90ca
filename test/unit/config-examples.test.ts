// Every ready-made config in config/examples/ must load: docs that match the code.
import { readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';

describe('config/examples', () => {
  it('holds at least the office, CI, air-gapped and TLS examples, and every one is valid', async () => {
    const files = (await readdir('config/examples')).filter((f) => f.endsWith('.yaml')).sort();
    expect(files).toEqual(['air-gapped.yaml', 'behind-tls.yaml', 'ci-cache.yaml', 'office-cache.yaml']);
    for (const file of files) {
      const config = await loadConfig({ file: `config/examples/${file}` });
      expect(config.listen.port).toBe(5000);
    }
  });
});
