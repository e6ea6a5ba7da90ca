// The page's files (assets/: index.html, app.js, style.css, icon.svg), read once at start and served from
// memory. Resolved next to this module, so vitest running src/ and node running dist/src/ (the build copies
// assets/ there, scripts/copy-assets.mjs) both find them; a build that lost them fails the start, not a request.
import { readFile } from 'node:fs/promises';

export interface Asset {
  body: Buffer;
  contentType: string;
}

/** URL path → file in assets/. */
const FILES: ReadonlyArray<[path: string, file: string, contentType: string]> = [
  ['/', 'index.html', 'text/html; charset=utf-8'],
  ['/ui/app.js', 'app.js', 'text/javascript; charset=utf-8'],
  ['/ui/style.css', 'style.css', 'text/css; charset=utf-8'],
  ['/ui/icon.svg', 'icon.svg', 'image/svg+xml'],
];

export async function loadAssets(): Promise<ReadonlyMap<string, Asset>> {
  const dir = new URL('./assets/', import.meta.url);
  const entries = await Promise.all(
    FILES.map(async ([path, file, contentType]): Promise<[string, Asset]> => [path, { body: await readFile(new URL(file, dir)), contentType }]),
  );
  return new Map(entries);
}

/** The version in package.json: two levels up from src/status/, three from dist/src/status/. */
export async function readVersion(): Promise<string> {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const json = JSON.parse(await readFile(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (json.name === 'regmirror' && typeof json.version === 'string') return json.version;
    } catch {
      // not this level
    }
  }
  return 'unknown';
}
