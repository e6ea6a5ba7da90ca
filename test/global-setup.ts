// Owns: the one registry shared by all test files, seeded once with the standard image set.
// Type-only import: brings 'vitest' into the program so the augmentation below resolves; erased at runtime,
// because globalSetup runs in the main process where the test runtime is not available.
import type {} from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';
import { startRegistry } from './fixtures/registry.js';
import { pushTestImages, type TestImages } from './fixtures/test-images.js';

declare module 'vitest' {
  export interface ProvidedContext {
    registryUrl: string;
    images: TestImages;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Tests that run regmirror as a process (kill -9, CLI exit codes) use dist/: built once, here.
  await promisify(execFile)('npx', ['tsc', '-p', 'tsconfig.build.json'], { timeout: 180_000 });
  // The status page's files, which tsc does not copy (as `npm run build` does).
  await promisify(execFile)(process.execPath, ['scripts/copy-assets.mjs'], { timeout: 30_000 });
  const registry = await startRegistry();
  try {
    const images = await pushTestImages(registry.url);
    project.provide('registryUrl', registry.url);
    project.provide('images', images);
  } catch (err) {
    await registry.stop();
    throw err;
  }
  return () => registry.stop();
}
