// The container image's Dockerfile: its health check follows the configured listener, and it builds offline.
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';

const dockerfile = () => readFile('Dockerfile', 'utf8');

describe('Dockerfile', () => {
  it('checks health with `regmirror healthcheck`, which reads the listener from the config, not a fixed port', async () => {
    const text = await dockerfile();
    // One instruction, continuation lines joined.
    const healthcheck = /^HEALTHCHECK\b(?:.*\\\n)*.*$/m.exec(text)?.[0].replace(/\\\n\s*/g, ' ');
    expect(healthcheck).toMatch(/ CMD \["node", "dist\/src\/main\.js", "healthcheck"\]$/);
    expect(healthcheck).not.toMatch(/5000/);
  });

  it('has no `# syntax=` directive: below line 1 BuildKit ignores it, on line 1 it fetches a frontend image', async () => {
    expect(await dockerfile()).not.toMatch(/^#\s*syntax\s*=/im);
  });
});
