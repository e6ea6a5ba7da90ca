// Owns: the one registry shared by all test files, seeded once with the standard image set.
// Type-only import: brings 'vitest' into the program so the augmentation below resolves; erased at runtime,
// because globalSetup runs in the main process where the test runtime is not available.
import type {} from 'vitest';
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
