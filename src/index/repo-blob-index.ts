// Which repository is known to hold which content (`<registry>/<repo>@<digest>` → true), for registries the mirror
// pulls with credentials: a digest is served for a repository only once that repository is known to hold it, so
// a private layer never leaks through a public repository's path (issue 14, finding 3). An LRU in front of
// LevelDB answers the warm path without a disk read. Records are never removed: one is true as long as upstream
// keeps the content, and costs a few dozen bytes.
import { LRUCache } from 'lru-cache';
import type { Digest, Repository } from '../registry/reference.js';
import { sublevel, type IndexDb } from './db.js';

export class RepoBlobIndex {
  private readonly db;
  private readonly hot: LRUCache<string, true>;

  constructor(db: IndexDb, hotEntries: number) {
    this.db = sublevel<true>(db, 'repo-blobs');
    this.hot = new LRUCache({ max: hotEntries });
  }

  async has(registry: string, repo: Repository, digest: Digest): Promise<boolean> {
    const key = keyOf(registry, repo, digest);
    if (this.hot.has(key)) return true;
    const found = (await this.db.get(key)) === true;
    if (found) this.hot.set(key, true);
    return found;
  }

  async add(registry: string, repo: Repository, digest: Digest): Promise<void> {
    const key = keyOf(registry, repo, digest);
    if (this.hot.has(key)) return;
    await this.db.put(key, true);
    this.hot.set(key, true);
  }
}

function keyOf(registry: string, repo: Repository, digest: Digest): string {
  return `${registry}/${repo}@${digest}`;
}
