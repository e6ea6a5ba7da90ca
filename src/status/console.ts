// Wires the status page from the mirror's parts: assets and version read once, the history sampler started,
// the image list cached. app.ts calls it when `status.page` is on; `close` stops the sampler.
import { listImages, type ImageListDeps, type ImageRow } from '../admin/images.js';
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
  const images = cachedFor(IMAGES_TTL_MS, now, async () => {
    const rows = await listImages(deps.images);
    return { generatedAt: now(), images: rows.map(toJson) };
  });
  const handler = createStatusRoutes({ assets, snapshot, history, images, auth: deps.auth });
  return { handler, history, close: () => history.stop() };
}

/** JSON has no undefined: a never-pulled image says `pulledAt: null`. */
function toJson(row: ImageRow) {
  return { ...row, pulledAt: row.pulledAt ?? null };
}

/** The last result for `ttl` ms; callers arriving while it is computed share that computation. */
function cachedFor<T>(ttl: number, now: () => number, compute: () => Promise<T>): () => Promise<T> {
  let last: { value: T; at: number } | undefined;
  let pending: Promise<T> | undefined;
  return () => {
    if (last && now() - last.at < ttl) return Promise.resolve(last.value);
    pending ??= compute()
      .then((value) => {
        last = { value, at: now() };
        return value;
      })
      .finally(() => (pending = undefined));
    return pending;
  };
}
