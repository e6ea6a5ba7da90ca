// Build step after tsc: the status page's plain files (src/status/assets/) go next to the compiled module
// (dist/src/status/assets/), where src/status/assets.ts reads them at start. tsc copies no non-TS files.
import { cp, rm } from 'node:fs/promises';

const from = new URL('../src/status/assets/', import.meta.url);
const to = new URL('../dist/src/status/assets/', import.meta.url);
await rm(to, { recursive: true, force: true });
await cp(from, to, { recursive: true });
