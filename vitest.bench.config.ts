// Benchmarks: no registry global setup, only bench/ files.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    benchmark: { include: ['bench/**/*.bench.ts'] },
  },
});
