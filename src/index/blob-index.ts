// Records of verified content files (blobs and manifests alike), with an in-memory LRU in front of LevelDB
// so that a warm hit costs no disk read for metadata.
import { LRUCache } from 'lru-cache';
import type { Digest } from '../registry/reference.js';
import { sublevel, type IndexDb } from './db.js';

export interface BlobRecord {
  size: number;
  /** Content-Type to answer with: upstream's for layers, the manifest type for manifests. */
  mediaType: string;
  /** True when the content is a manifest (served with its media type on /blobs/ too). */
  manifest: boolean;
  createdAt: number;
  lastAccessAt: number;
}

export class BlobIndex {
  private readonly db;
  private readonly hot: LRUCache<string, BlobRecord>;

  constructor(db: IndexDb, hotEntries: number) {
    this.db = sublevel<BlobRecord>(db, 'blobs');
    this.hot = new LRUCache({ max: hotEntries });
  }

  async get(digest: Digest): Promise<BlobRecord | undefined> {
    const hot = this.hot.get(digest);
    if (hot) return hot;
    const record = await this.db.get(digest);
    if (record) this.hot.set(digest, record);
    return record;
  }

  async put(digest: Digest, record: BlobRecord): Promise<void> {
    await this.db.put(digest, record);
    this.hot.set(digest, record);
  }

  async delete(digest: Digest): Promise<void> {
    this.hot.delete(digest);
    await this.db.del(digest);
  }
}
