// Pinned images, by reference: kept whatever the quota says, and never collected. Written by `regmirror pin`
// and `unpin`; the config's `cache.pins` adds more without touching the database.
import { sublevel, type IndexDb } from './db.js';

export interface PinRecord {
  /** The normalised reference, e.g. `docker.io/library/alpine:3.19` or `docker.io/library/alpine@sha256:…`. */
  ref: string;
  pinnedAt: number;
}

export class PinIndex {
  private readonly db;

  constructor(db: IndexDb) {
    this.db = sublevel<PinRecord>(db, 'pins');
  }

  async add(ref: string, now: number): Promise<boolean> {
    const existing = await this.db.get(ref);
    if (existing) return false;
    await this.db.put(ref, { ref, pinnedAt: now });
    return true;
  }

  async remove(ref: string): Promise<boolean> {
    const existing = await this.db.get(ref);
    if (!existing) return false;
    await this.db.del(ref);
    return true;
  }

  async list(): Promise<PinRecord[]> {
    const all: PinRecord[] = [];
    for await (const record of this.db.values()) all.push(record);
    return all;
  }
}
