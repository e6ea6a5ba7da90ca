// Test runner config: one shared registry (globalSetup), forked workers, coverage over src/ only.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Integration tests move tens of MB through real processes; 5 s defaults would flake on 2 cores.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Forks, not threads: tests spawn child processes and open many sockets; a crash stays in its process.
    pool: 'forks',
    // Files run in parallel, but two at a time is what 2-core CI can take beside the registry process.
    maxWorkers: 2,
    coverage: {
      provider: 'v8',
      include: ['src/**'],
      reporter: ['text-summary'],
    },
  },
});
