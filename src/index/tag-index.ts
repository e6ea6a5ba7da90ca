// Tag records: which digest a tag pointed to, for which accept class, and when upstream last confirmed it.
import { LRUCache } from 'lru-cache';
import type { Digest } from '../registry/reference.js';
import { sublevel, type IndexDb } from './db.js';

export interface TagKey {
  /** Upstream name, e.g. docker.io: the same repository on two upstreams is two records. */
  upstream: string;
  repo: string;
  tag: string;
  /** See registry/media-types.ts acceptClass: upstream answers a tag differently per Accept. */
  acceptKey: string;
}

export interface TagEntry extends TagKey {
  digest: Digest;
  mediaType: string;
  size: number;
  /** When upstream last told us this digest (ms since epoch). */
  checkedAt: number;
}

export interface TagIndex {
  get(key: TagKey): Promise<TagEntry | undefined>;
  put(entry: TagEntry): Promise<void>;
}

export function tagKeyString(key: TagKey): string {
  return `${key.upstream}/${key.repo}:${key.tag}#${key.acceptKey}`;
}

export class LevelTagIndex implements TagIndex {
  private readonly db;
  private readonly hot: LRUCache<string, TagEntry>;

  constructor(db: IndexDb, hotEntries: number) {
    this.db = sublevel<TagEntry>(db, 'tags');
    this.hot = new LRUCache({ max: hotEntries });
  }

  async get(key: TagKey): Promise<TagEntry | undefined> {
    const id = tagKeyString(key);
    const hot = this.hot.get(id);
    if (hot) return hot;
    const entry = await this.db.get(id);
    if (entry) this.hot.set(id, entry);
    return entry;
  }

  async put(entry: TagEntry): Promise<void> {
    const id = tagKeyString(entry);
    await this.db.put(id, entry);
    this.hot.set(id, entry);
  }
}
