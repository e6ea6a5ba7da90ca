// The upstream of an air-gapped mirror (`upstream.url: none`, or `serve --offline`): there is none. Every miss
// is answered at once, and cached tags are served whatever their age (see cache/manifests.ts).
import type { Upstream } from './upstream.js';

export class OfflineUpstream implements Upstream {
  readonly offline = true;

  constructor(readonly name: string) {}

  resolveManifest(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  fetchManifest(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  statBlob(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  fetchBlob(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  listTags(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** What a client reads when an offline mirror does not have something. */
export const OFFLINE_NOTE = 'this mirror is offline (no upstream): only what was seeded or imported is served';
