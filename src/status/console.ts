// Wires the status page from the mirror's parts: assets and version read once, the history sampler started,
// the tag records behind the image list scanned at most once per TTL, image sizes memoised by digest. app.ts calls it when `status.page` is on; `close` stops the sampler.
import { ImageSizes, listImageEntries, pageOfImages, type ImageEntry, type ImageListDeps, type ImageQuery, type ImageRow } from '../admin/images.js';
import type { Handler } from '../http/server.js';
import type { ClientAuth } from '../http/client-auth.js';
import { loadAssets, readVersion } from './assets.js';
import { History, type Every } from './history.js';
import { createStatusRoutes } from './routes.js';
import { StatusSnapshot, type SnapshotDeps } from './snapshot.js';
import { readTotals } from './totals.js';

/** A wall screen polling every few seconds reads the list this old at most: the index is walked once per TTL. */
export const IMAGES_TTL_MS = 5_000;

export interface StatusConsoleDeps extends Omit<SnapshotDeps, 'history' | 'version' | 'startedAt'> {
  images: ImageListDeps;
  auth?: ClientAuth | undefined;
  every?: Every;
}

export interface StatusConsole {
  handler: Handler;
  history: History;
  close(): void;
}

export async function openStatusConsole(deps: StatusConsoleDeps): Promise<StatusConsole> {
  const now = deps.now ?? Date.now;
  const [assets, version] = await Promise.all([loadAssets(), readVersion()]);
  const history = new History({ read: () => readTotals(deps.metrics), now, every: deps.every });
  await history.start();
  const snapshot = new StatusSnapshot({ ...deps, history, version, startedAt: now() });
  // The tag records are scanned at most once per TTL, however many pages are open; a scan that took long waits
  // longer (ten times its duration) before the next: at 100,000 tags a wall screen is not a scan that never ends.
  const entries = cachedFor(IMAGES_TTL_MS, now, async () => ({ generatedAt: now(), rows: await listImageEntries(deps.images) }));
  const sizes = new ImageSizes(deps.images, now);
  const images = async (query: ImageQuery, visible: (row: ImageEntry) => boolean) => {
    const { generatedAt, rows } = await entries();
    const page = await pageOfImages(deps.auth ? rows.filter(visible) : rows, query, sizes);
    return { generatedAt, total: page.total, matched: page.matched, limit: query.limit, images: page.images.map(toJson) };
  };
  const handler = createStatusRoutes({ assets, snapshot, history, images, auth: deps.auth });
  return { handler, history, close: () => history.stop() };
}

/** JSON has no undefined: a never-pulled image says `pulledAt: null`. */
function toJson(row: ImageRow) {
  return { ...row, pulledAt: row.pulledAt ?? null };
}

/** The last result for `ttl` ms; callers arriving while it is computed share that computation. */
function cachedFor<T>(ttl: number, now: () => number, compute: () => Promise<T>): () => Promise<T> {
  let last: { value: T; at: number; took: number } | undefined;
  let pending: Promise<T> | undefined;
  return () => {
    if (last && now() - last.at < Math.max(ttl, 10 * last.took)) return Promise.resolve(last.value);
    const started = now();
    pending ??= compute()
      .then((value) => {
        last = { value, at: now(), took: now() - started };
        return value;
      })
      .finally(() => (pending = undefined));
    return pending;
  };
}
