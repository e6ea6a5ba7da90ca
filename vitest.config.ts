// Test runner config: two lanes. `unit` (npm run test:unit) is pure and in-process: no global setup, no registry
// process, no dist/ build, so it runs on every save. `integration` holds the rest (a real registry started once by
// globalSetup, regmirror as a process, real clients). `npm test` runs both with coverage and its thresholds.
import { configDefaults, defineConfig } from 'vitest/config';

/** In-process tests only: tiny node:http fault servers and temp directories are fine, child processes are not. */
const UNIT = ['test/unit/**/*.test.ts', 'test/contract/**/*.test.ts'];

export default defineConfig({
  test: {
    // Integration tests move tens of MB through real processes; 5 s defaults would flake on 2 cores.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Forks, not threads: tests spawn child processes and open many sockets; a crash stays in its process.
    pool: 'forks',
    // Files run in parallel, but two at a time is what 2-core CI can take beside the registry process.
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'unit', include: UNIT } },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...UNIT],
          // The one registry shared by all integration files, and dist/ for the tests that run regmirror as a process.
          globalSetup: ['test/global-setup.ts'],
        },
      },
    ],
    coverage: {
      provider: 'v8',
      // The mirror's TypeScript: the status page's browser assets are covered by the Chromium test, not here
      // (and an .html file in `include` made the coverage run log a PARSE_ERROR).
      include: ['src/**/*.ts'],
      reporter: ['text-summary'],
      // A little under the full run's figures (90.66 / 84.45 / 90.18 / 93.39 % when set, issue 16, TypeScript only),
      // so noise passes and a real drop fails `npm test`. Raise them as coverage grows.
      thresholds: { statements: 89, branches: 82, functions: 88, lines: 92 },
    },
  },
});
