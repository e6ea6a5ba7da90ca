// The full comparison run (npm run bench): regmirror vs distribution's proxy vs nginx, one long "test".
// No globalSetup: the run starts its own registry, front and targets.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['bench/**/*.bench-run.ts'],
    pool: 'forks',
    maxWorkers: 1,
    testTimeout: 30 * 60_000,
    hookTimeout: 120_000,
    // The table is the output: let console.log through unbuffered.
    silent: false,
  },
});
