// Digests in use: being downloaded (a fill) or streamed to a client from the store. Retention removes none of
// them; the fills and the blob cache mark them. Shared by both, so that neither depends on the other (issue 12).
import type { Digest } from '../registry/reference.js';

export class InUse {
  /** Holders per digest: a fill and any number of clients may hold one digest at once. */
  private readonly holders = new Map<Digest, number>();

  /** Marks the digest in use until a matching `release`. */
  hold(digest: Digest): void {
    this.holders.set(digest, (this.holders.get(digest) ?? 0) + 1);
  }

  release(digest: Digest): void {
    const left = (this.holders.get(digest) ?? 1) - 1;
    if (left <= 0) this.holders.delete(digest);
    else this.holders.set(digest, left);
  }

  has(digest: Digest): boolean {
    return this.holders.has(digest);
  }
}
